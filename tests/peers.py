"""Independent TLS stacks as loopback peers: Java's JSSE, node's ``tls``, GnuTLS.

The peer programs live in ``tests/peers/`` (``TLSPeer.java``, ``tls_peer.js``); GnuTLS is
its own ``gnutls-serv``/``gnutls-cli``.  Each runs as a subprocess whose output is collected
by a thread (:class:`PeerProcess` and :class:`GnuTLSProcess`, both
:class:`tests.sockloop.OpenSSLProcess`) and is killed on exit if still running.  The Java
and node programs print one line per event::

    LISTENING <port>                                (servers, once)
    HANDSHAKE <protocol> <suite> <alpn|-> <peer|-> [reused|full]
    CLOSED
    DONE                                            (or ERROR <what>, exit status 1)

Every wait is bounded (:data:`tests.sockloop.DEFAULT_TIMEOUT` unless given); the programs
have timeouts of their own too.  Only loopback is used: the Java and node servers listen on
127.0.0.1; ``gnutls-serv``, which cannot be told to, listens in a network namespace of its
own (:meth:`GnuTLSProcess.server`, :meth:`GnuTLSProcess.connect`).
"""

from __future__ import annotations

import ctypes
import fcntl
import os
import shutil
import socket
import struct
import subprocess
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

from tests.certs import Issued
from tests.sockloop import DEFAULT_TIMEOUT, OpenSSLProcess

__all__ = [
    "GNUTLS_PRIORITY",
    "GNUTLS_TIMEOUT",
    "JVM_TIMEOUT",
    "PEERS_DIR",
    "GnuTLSProcess",
    "Handshake",
    "PeerProcess",
    "compile_java_peer",
    "gnutls_cli",
    "gnutls_serv",
    "java_client",
    "java_server",
    "node_client",
    "node_server",
    "write_keystore",
]

#: Where the peer programs are.
PEERS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "peers")
#: A JVM takes a second or two to start on a busy 2-core machine: waits on it get longer.
JVM_TIMEOUT = 30.0
KEYSTORE_PASSWORD = "aiotls-test"


@dataclass(frozen=True)
class Handshake:
    """One ``HANDSHAKE`` line of a Java or node peer."""

    protocol: str
    suite: str
    alpn: str | None
    peer: str | None
    reused: bool | None  # node only

    @classmethod
    def parse(cls, line: str) -> Handshake:
        fields = line.split()
        if len(fields) < 5 or fields[0] != "HANDSHAKE":
            raise AssertionError(f"not a HANDSHAKE line: {line!r}")
        reused = None if len(fields) < 6 else fields[5] == "reused"
        return cls(fields[1], fields[2], None if fields[3] == "-" else fields[3],
                   None if fields[4] == "-" else fields[4], reused)


class PeerProcess(OpenSSLProcess):
    """A peer subprocess; :meth:`line` and :meth:`handshakes` read its report."""

    def line(self, prefix: str, timeout: float = DEFAULT_TIMEOUT) -> str:
        """The first output line starting with *prefix* (waits for it, bounded)."""
        deadline = time.monotonic() + timeout
        while True:
            for line in self.output.splitlines():
                if line.startswith(prefix):
                    return line
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no {prefix!r} line from {self.argv[:3]} in {timeout}s; "
                                   f"output:\n{self.output}")
            self.wait_for_output(prefix, left)

    def port(self, timeout: float = JVM_TIMEOUT) -> int:
        """The port a Java or node server printed."""
        return int(self.line("LISTENING ", timeout).split()[1])

    def handshakes(self) -> list[Handshake]:
        return [Handshake.parse(line) for line in self.output.splitlines()
                if line.startswith("HANDSHAKE ")]

    def finish(self, timeout: float = JVM_TIMEOUT) -> str:
        """Wait for a Java or node peer to exit; its output.  Fails unless it printed DONE
        with exit status 0 and no ERROR line."""
        rc, output = self.wait(timeout)
        assert rc == 0 and "DONE" in output and "ERROR" not in output, \
            f"{self.argv[:3]} exited with {rc}:\n{output}"
        return output


# --- Java --------------------------------------------------------------------------------------


def compile_java_peer(outdir: str) -> str:
    """Compile ``TLSPeer.java`` into *outdir* with ``javac``; the class directory."""
    javac = shutil.which("javac")
    if javac is None:
        raise RuntimeError("javac not found: .ci/run installs default-jdk-headless")
    subprocess.run([javac, "-d", outdir, os.path.join(PEERS_DIR, "TLSPeer.java")],
                   check=True, timeout=180, capture_output=True)
    return outdir


def write_keystore(issued: Issued, directory: str, name: str = "java") -> str:
    """A PKCS#12 keystore of *issued* (password :data:`KEYSTORE_PASSWORD`) for Java."""
    return issued.write_pkcs12(directory, KEYSTORE_PASSWORD.encode(), name=name)


def _java_options(*, keystore: str | None, trust: str | None, protocols: Sequence[str],
                  alpn: Sequence[str], echo: int, count: int) -> list[str]:
    argv = ["--echo", str(echo), "--count", str(count)]
    if keystore is not None:
        argv += ["--keystore", keystore, "--storepass", KEYSTORE_PASSWORD]
    if trust is not None:
        argv += ["--trust", trust]
    if protocols:
        argv += ["--protocols", ",".join(protocols)]
    if alpn:
        argv += ["--alpn", ",".join(alpn)]
    return argv


def _java(classdir: str) -> list[str]:
    # a small heap and no JIT tiers beyond C1: starts faster, enough for a few handshakes
    return ["java", "-Xshare:auto", "-XX:TieredStopAtLevel=1", "-Xmx128m",
            "-cp", classdir, "TLSPeer"]


def java_server(classdir: str, *, keystore: str, trust: str | None = None,
                need_client_auth: bool = False, protocols: Sequence[str] = (),
                alpn: Sequence[str] = (), echo: int = 0, count: int = 1) -> PeerProcess:
    """A JSSE server on 127.0.0.1 serving *count* connections one after another."""
    argv = [*_java(classdir), "server", *_java_options(keystore=keystore, trust=trust, protocols=protocols, alpn=alpn, echo=echo, count=count)]
    if need_client_auth:
        argv.append("--need-client-auth")
    return PeerProcess(argv)


def java_client(classdir: str, port: int, *, trust: str, keystore: str | None = None,
                protocols: Sequence[str] = (), alpn: Sequence[str] = (), echo: int = 0,
                count: int = 1, sni: str = "localhost") -> PeerProcess:
    """A JSSE client making *count* connections to 127.0.0.1:*port* one after another."""
    return PeerProcess([*_java(classdir), "client", "--port", str(port), "--sni", sni, *_java_options(keystore=keystore, trust=trust, protocols=protocols, alpn=alpn, echo=echo, count=count)])


# --- node --------------------------------------------------------------------------------------


def _node_options(*, certfile: str | None, keyfile: str | None, ca: str | None,
                  min_version: str | None, max_version: str | None, alpn: Sequence[str],
                  echo: int, count: int) -> list[str]:
    argv = ["--echo", str(echo), "--count", str(count)]
    for flag, value in (("--cert", certfile), ("--key", keyfile), ("--ca", ca),
                        ("--min", min_version), ("--max", max_version)):
        if value is not None:
            argv += [flag, value]
    if alpn:
        argv += ["--alpn", ",".join(alpn)]
    return argv


def node_server(*, certfile: str, keyfile: str, ca: str | None = None,
                request_cert: bool = False, min_version: str | None = None,
                max_version: str | None = None, alpn: Sequence[str] = (), echo: int = 0,
                count: int = 1) -> PeerProcess:
    """A node ``tls.createServer`` on 127.0.0.1 serving *count* connections."""
    argv = ["node", os.path.join(PEERS_DIR, "tls_peer.js"), "server", *_node_options(certfile=certfile, keyfile=keyfile, ca=ca, min_version=min_version, max_version=max_version, alpn=alpn, echo=echo, count=count)]
    if request_cert:
        argv.append("--request-cert")
    return PeerProcess(argv)


def node_client(port: int, *, ca: str, certfile: str | None = None,
                keyfile: str | None = None, min_version: str | None = None,
                max_version: str | None = None, alpn: Sequence[str] = (), echo: int = 0,
                count: int = 1, resume: bool = False) -> PeerProcess:
    """A node ``tls.connect`` client making *count* connections one after another."""
    argv = ["node", os.path.join(PEERS_DIR, "tls_peer.js"), "client", "--port", str(port)]
    argv += _node_options(certfile=certfile, keyfile=keyfile, ca=ca, min_version=min_version,
                          max_version=max_version, alpn=alpn, echo=echo, count=count)
    if resume:
        argv.append("--resume")
    return PeerProcess(argv)


# --- GnuTLS ------------------------------------------------------------------------------------

#: Waits on GnuTLS (a start, a handshake of a busy machine).
GNUTLS_TIMEOUT = 20.0

#: GnuTLS priority strings pinning one version (the rest of NORMAL stays).
GNUTLS_PRIORITY = {
    "TLSv1.2": "NORMAL:-VERS-ALL:+VERS-TLS1.2",
    "TLSv1.3": "NORMAL:-VERS-ALL:+VERS-TLS1.3",
    None: "NORMAL",
}

#: The port gnutls-serv listens on inside its own network namespace (no one else is there).
GNUTLS_PORT = 4433

_CLONE_NEWNET = 0x40000000
_SIOCSIFFLAGS = 0x8914
_IFF_UP_LOOPBACK_RUNNING = 0x1 | 0x8 | 0x40


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise RuntimeError(f"{name} not found: .ci/run installs it (gnutls-bin, util-linux)")
    return path


class GnuTLSProcess(OpenSSLProcess):
    """A ``gnutls-cli`` or ``gnutls-serv`` subprocess, output collected like
    :class:`tests.sockloop.OpenSSLProcess` (use it as a context manager too).

    ``gnutls-serv`` has no option to choose its address and listens on every interface, so
    :meth:`server` runs it in a network namespace of its own (``unshare --net``, which needs
    root as in CI), where only loopback exists, and :meth:`connect` opens a TCP connection
    to it from inside that namespace: nothing listens outside loopback.  Starting
    ``gnutls-serv`` any other way is refused.
    """

    #: The namespace and port of a process started by :meth:`server`.
    netns_fd: int | None = None
    port: int = 0

    def __init__(self, argv: Sequence[str], *, stdin: bytes | None = None) -> None:
        if os.path.basename(argv[0]) == "gnutls-serv":
            raise ValueError("gnutls-serv listens on every interface: start it with "
                             "GnuTLSProcess.server() (or gnutls_serv()), in a namespace")
        super().__init__(argv, stdin=stdin)

    @classmethod
    def server(cls, args: Sequence[str], *, port: int = GNUTLS_PORT,
               timeout: float = GNUTLS_TIMEOUT) -> GnuTLSProcess:
        """Start ``gnutls-serv --port PORT ARGS...`` in a private network namespace and
        wait until it listens."""
        proc = cls([_tool("unshare"), "--net", _tool("gnutls-serv"), "--port", str(port),
                    *args])
        try:
            proc.wait_for_output("listening on IPv4", timeout)
            proc.netns_fd = os.open(f"/proc/{proc.proc.pid}/ns/net", os.O_RDONLY)
            proc.port = port
        except BaseException:
            proc.kill()
            raise
        return proc

    def connect(self, timeout: float = GNUTLS_TIMEOUT) -> socket.socket:
        """A TCP connection to the server (in its namespace, to 127.0.0.1:port); hand it to
        :class:`tests.sockloop.SocketTLS` or to ``aiotls.asyncio`` as ``sock=``."""
        assert self.netns_fd is not None, "connect() is for processes started by server()"
        result: list[socket.socket | BaseException] = []
        fd = self.netns_fd

        def in_namespace() -> None:
            # setns() moves only this thread; the socket stays in the namespace it was
            # made in, whichever thread uses it afterwards.
            try:
                libc = ctypes.CDLL(None, use_errno=True)
                if libc.setns(fd, _CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), "setns failed")
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as ctl:
                    fcntl.ioctl(ctl, _SIOCSIFFLAGS,
                                struct.pack("16sH", b"lo", _IFF_UP_LOOPBACK_RUNNING))
                result.append(socket.create_connection(("127.0.0.1", self.port),
                                                       timeout=timeout))
            except BaseException as exc:  # reported in the calling thread
                result.append(exc)

        thread = threading.Thread(target=in_namespace, name="gnutls-netns")
        thread.start()
        thread.join(timeout)
        if not result:
            raise TimeoutError("connecting into gnutls-serv's namespace timed out")
        if isinstance(result[0], BaseException):
            raise result[0]
        return result[0]

    def kill(self) -> None:
        super().kill()
        if self.netns_fd is not None:
            os.close(self.netns_fd)
            self.netns_fd = None

    def __enter__(self) -> GnuTLSProcess:
        return self


def _gnutls_options(*, version: str | None, ca: str | None, certfile: str | None,
                    keyfile: str | None, alpn: Sequence[str],
                    record_size: int | None) -> list[str]:
    """What ``gnutls-serv`` and ``gnutls-cli`` are told alike."""
    argv = ["--priority", GNUTLS_PRIORITY[version]]
    for flag, value in (("--x509cafile", ca), ("--x509certfile", certfile),
                        ("--x509keyfile", keyfile)):
        if value is not None:
            argv += [flag, value]
    argv += [f"--alpn={name}" for name in alpn]
    if record_size is not None:
        argv.append(f"--recordsize={record_size}")
    return argv


def gnutls_serv(*, certfile: str, keyfile: str, version: str | None = None,
                ca: str | None = None, require_client_cert: bool = False,
                alpn: Sequence[str] = (), record_size: int | None = None,
                sni_hostname: str | None = None, tickets: bool = True,
                timeout: float = GNUTLS_TIMEOUT) -> GnuTLSProcess:
    """``gnutls-serv --echo`` in a network namespace of its own, listening (connect to it
    with :meth:`GnuTLSProcess.connect`).

    *sni_hostname*: the name it serves; a client asking for another one gets a
    warning-level ``unrecognized_name`` before the ServerHello (GnuTLS's default).
    *tickets* False: ``--noticket``.
    """
    argv = ["--echo", *_gnutls_options(version=version, ca=ca, certfile=certfile,
                                       keyfile=keyfile, alpn=alpn, record_size=record_size)]
    if require_client_cert:
        assert ca is not None, "a client certificate is verified against ca"
        argv += ["--require-client-cert", "--verify-client-cert"]
    else:
        argv.append("--disable-client-cert")
    if sni_hostname is not None:
        argv.append(f"--sni-hostname={sni_hostname}")
    if not tickets:
        argv.append("--noticket")
    return GnuTLSProcess.server(argv, timeout=timeout)


def gnutls_cli(port: int, *, ca: str, stdin: bytes, version: str | None = None,
               certfile: str | None = None, keyfile: str | None = None,
               alpn: Sequence[str] = (), record_size: int | None = None,
               servername: str = "localhost") -> GnuTLSProcess:
    """``gnutls-cli`` to 127.0.0.1:*port*, sending *stdin* (it sends close_notify at the
    end of its input -- :meth:`GnuTLSProcess.close_stdin` -- and prints what it received)."""
    assert (certfile is None) == (keyfile is None), "a client certificate needs its key"
    argv = [_tool("gnutls-cli"), "-p", str(port), "--sni-hostname", servername,
            "--verify-hostname", servername,
            *_gnutls_options(version=version, ca=ca, certfile=certfile, keyfile=keyfile,
                             alpn=alpn, record_size=record_size), "127.0.0.1"]
    return GnuTLSProcess(argv, stdin=stdin)
