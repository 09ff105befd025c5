"""The ``aiotls`` command line (``python -m aiotls``).

Subcommands::

    demo      a TLS server and client talking over loopback, in one process
    certs     inspect PEM certificates; check a host name; verify a chain against a CA
    connect   handshake with a TLS server and show what was negotiated
    serve     a TLS echo server
    diagnose  probe what a server accepts and verify its certificate

Everything here uses blocking sockets with a deadline on every wait, driving the
sans-IO :class:`aiotls.TLSConnection` directly (see :class:`aiotls.sync.Channel`), so the
command line doubles as a readable example of the core API.

Exit status: 0 on success, 1 when the operation or a requested check fails
(the error is printed as ``error:`` / ``likely cause:`` / ``fix:`` lines on
stderr), 2 for command-line usage errors and unimplemented commands.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import ipaddress
import itertools
import os
import signal
import socket
import ssl
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import FrameType
from typing import Any, TextIO

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm

from . import __version__, _crypto, _verify
from ._crypto import ThrowawayPKI, generate_throwaway_pki
from .connection import TLSConnection
from .context import ALL_GROUPS, ALL_SUITES, TLSContext
from .errors import CertificateError, TLSError
from .events import (
    CloseNotifyReceived,
    ConnectionTerminated,
    DataReceived,
    HandshakeCompleted,
)
from .sync import Channel

__all__ = ["CLIError", "hostname_matches", "main"]

#: Exit statuses.
EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2

_DEMO_BUDGET = 4.5  # seconds for the whole demo, key generation included
_DEMO_MESSAGES = ("hello", "how are you?", "goodbye")
_DEMO_CLIENT_ALPN = ("h2", "http/1.1")
_DEMO_SERVER_ALPN = ("http/1.1",)
_KEY_TYPES = ("ecdsa", "rsa", "ed25519")


# --- errors and output -------------------------------------------------------------------------


class CLIError(Exception):
    """A failure outside TLS proper (network, files, timeouts), in aiotls's three-sentence
    shape: what happened, the likely cause, and the fix."""

    def __init__(self, what: str, *, cause: str = "", hint: str = "") -> None:
        super().__init__(what)
        self.what = what
        self.cause = cause
        self.hint = hint


def _error_lines(err: BaseException) -> list[str]:
    """``error:`` / ``likely cause:`` / ``fix:`` lines for an aiotls or CLI error."""
    what = getattr(err, "what", None) or str(err) or type(err).__name__
    lines = [f"error: {what}"]
    cause = getattr(err, "cause", "")
    hint = getattr(err, "hint", "")
    if cause:
        lines.append(f"likely cause: {cause}")
    if hint:
        lines.append(f"fix: {hint}")
    return lines


def _print_error(err: BaseException) -> None:
    for line in _error_lines(err):
        print(line, file=sys.stderr)


def _network_error(exc: OSError, doing: str) -> CLIError:
    """Turn a socket error into a CLIError with advice."""
    detail = exc.strerror or str(exc) or type(exc).__name__
    if isinstance(exc, socket.gaierror):
        return CLIError(f"cannot resolve the host name while {doing}: {detail}",
                        cause="the name does not exist in DNS, or there is no network",
                        hint="check the spelling of the host name, or use an IP address")
    if isinstance(exc, ConnectionRefusedError):
        return CLIError(f"connection refused while {doing}",
                        cause="nothing is listening on that port (or a firewall rejects it)",
                        hint="check the host and port, and that the server is running")
    if isinstance(exc, ConnectionResetError | BrokenPipeError | ConnectionAbortedError):
        return CLIError(f"the peer reset the connection while {doing}",
                        cause="the peer aborted the connection without a TLS alert (it may not "
                        "speak TLS on this port, or it rejected our hello abruptly)",
                        hint="check the peer's logs and that the port serves TLS")
    if isinstance(exc, TimeoutError):
        return CLIError(f"timed out while {doing}",
                        cause="the peer does not answer: wrong address, a firewall dropping "
                        "packets, or a busy server",
                        hint="check the host and port; raise --timeout if the peer is slow")
    return CLIError(f"network error while {doing}: {detail}",
                    cause="the operating system reported a socket error",
                    hint="check the address and the network")


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def _row(out: TextIO, label: str, value: str, indent: int = 2) -> None:
    print(f"{' ' * indent}{label:<16} {value}", file=out)


# --- certificate description -------------------------------------------------------------------


def _utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _fmt_time(dt: datetime.datetime) -> str:
    return dt.strftime("%Y-%m-%d %H:%M:%S UTC")


def _human_delta(delta: datetime.timedelta) -> str:
    secs = abs(delta.total_seconds())
    if secs < 120:
        return f"{int(secs)} seconds"
    if secs < 2 * 3600:
        return f"{int(secs // 60)} minutes"
    if secs < 2 * 86400:
        return f"{int(secs // 3600)} hours"
    return f"{int(secs // 86400)} days"


def validity_status(cert: x509.Certificate, now: datetime.datetime) -> tuple[bool, str]:
    """(currently valid?, a phrase like ``valid, expires in 30 days`` or ``EXPIRED 2 days ago``)."""
    not_before, not_after = cert.not_valid_before_utc, cert.not_valid_after_utc
    if now < not_before:
        return False, f"NOT YET VALID: starts in {_human_delta(not_before - now)}"
    if now > not_after:
        return False, f"EXPIRED {_human_delta(now - not_after)} ago"
    return True, f"valid now, expires in {_human_delta(not_after - now)}"


def _name(name: x509.Name) -> str:
    return name.rfc4514_string() or "(empty)"


def _oid_name(oid: x509.ObjectIdentifier) -> str:
    name = getattr(oid, "_name", None)
    if not isinstance(name, str) or not name or name == "Unknown OID":
        return oid.dotted_string
    return name


def _serial(cert: x509.Certificate) -> str:
    text = f"{cert.serial_number:X}"
    if len(text) % 2:
        text = "0" + text
    return ":".join(text[i:i + 2] for i in range(0, len(text), 2))


def _san_text(cert: x509.Certificate) -> str:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return "none (no subjectAltName extension: no host name can match it)"
    parts: list[str] = []
    for gn in san:
        if isinstance(gn, x509.DNSName):
            parts.append(f"DNS:{gn.value}")
        elif isinstance(gn, x509.IPAddress):
            parts.append(f"IP:{gn.value}")
        elif isinstance(gn, x509.RFC822Name):
            parts.append(f"email:{gn.value}")
        elif isinstance(gn, x509.UniformResourceIdentifier):
            parts.append(f"URI:{gn.value}")
        else:
            parts.append(type(gn).__name__)
    return ", ".join(parts) or "(empty subjectAltName)"


def _critical(ext: x509.Extension[Any]) -> str:
    return " (critical)" if ext.critical else ""


def _key_usage_text(cert: x509.Certificate) -> str | None:
    try:
        ext = cert.extensions.get_extension_for_class(x509.KeyUsage)
    except x509.ExtensionNotFound:
        return None
    ku = ext.value
    flags = [
        ("digitalSignature", ku.digital_signature), ("contentCommitment", ku.content_commitment),
        ("keyEncipherment", ku.key_encipherment), ("dataEncipherment", ku.data_encipherment),
        ("keyAgreement", ku.key_agreement), ("keyCertSign", ku.key_cert_sign),
        ("cRLSign", ku.crl_sign),
    ]
    names = [n for n, on in flags if on]
    if ku.key_agreement:
        if ku.encipher_only:
            names.append("encipherOnly")
        if ku.decipher_only:
            names.append("decipherOnly")
    return (", ".join(names) or "(none)") + _critical(ext)


def _eku_text(cert: x509.Certificate) -> str:
    try:
        ext = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    except x509.ExtensionNotFound:
        return "not present (any use allowed)"
    return (", ".join(_oid_name(o) for o in ext.value) or "(empty)") + _critical(ext)


def _basic_constraints_text(cert: x509.Certificate) -> str:
    try:
        ext = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    except x509.ExtensionNotFound:
        return "not present (not a CA)"
    bc = ext.value
    if not bc.ca:
        return "CA: no" + _critical(ext)
    depth = "unlimited" if bc.path_length is None else str(bc.path_length)
    return f"CA: yes, path length {depth}" + _critical(ext)


def _signature_text(cert: x509.Certificate) -> str:
    return _oid_name(cert.signature_algorithm_oid)


def _key_text(cert: x509.Certificate) -> str:
    try:
        return _crypto.key_description(cert.public_key())
    except (ValueError, UnsupportedAlgorithm) as exc:
        return f"unsupported key ({exc})"


def describe_certificate(
    out: TextIO, cert: x509.Certificate, now: datetime.datetime, *, full: bool = True,
    indent: int = 2,
) -> None:
    """Print the interesting fields of a certificate, one per line."""
    _row(out, "subject", _name(cert.subject), indent)
    _row(out, "issuer", _name(cert.issuer), indent)
    if full:
        _row(out, "serial", _serial(cert), indent)
    _row(out, "valid from", _fmt_time(cert.not_valid_before_utc), indent)
    _row(out, "valid until", _fmt_time(cert.not_valid_after_utc), indent)
    _row(out, "status", validity_status(cert, now)[1], indent)
    _row(out, "names (SAN)", _san_text(cert), indent)
    _row(out, "public key", _key_text(cert), indent)
    if full:
        _row(out, "signature", _signature_text(cert), indent)
        ku = _key_usage_text(cert)
        if ku is not None:
            _row(out, "key usage", ku, indent)
        _row(out, "extended usage", _eku_text(cert), indent)
        _row(out, "basic constr.", _basic_constraints_text(cert), indent)
    _row(out, "SHA-256", _crypto.fingerprint_sha256(cert), indent)


def _issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> tuple[bool, str]:
    """Whether ``issuer`` issued ``cert``: names, then signature."""
    if cert.issuer != issuer.subject:
        return False, (f"NO: its issuer {_name(cert.issuer)} is not the next certificate's "
                       f"subject {_name(issuer.subject)} (wrong order, or a missing intermediate)")
    try:
        cert.verify_directly_issued_by(issuer)
    except InvalidSignature:
        return False, "NO: the names match but the signature does not verify with its key"
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        return True, f"names match (signature not checked: {exc})"
    return True, "yes (issuer name matches, signature verifies)"


# --- host names ----------------------------------------------------------------------------------


def _normalize_dns(name: str) -> str:
    name = name.rstrip(".").lower()
    try:
        return name.encode("idna").decode("ascii")
    except UnicodeError:
        return name


def _name_matches(pattern: str, hostname: str) -> bool:
    try:
        wanted_ip = ipaddress.ip_address(hostname.strip("[]"))
    except ValueError:
        wanted_ip = None
    if wanted_ip is not None:
        try:
            return ipaddress.ip_address(pattern) == wanted_ip
        except ValueError:
            return False
    host = _normalize_dns(hostname)
    pat = pattern.rstrip(".").lower()
    if pat.startswith("*."):
        # A wildcard stands for exactly one whole left-most label (RFC 6125 6.4.3).
        suffix = _normalize_dns(pat[2:])
        label, dot, rest = host.partition(".")
        return bool(label) and bool(dot) and rest == suffix and "*" not in label
    return "*" not in pat and _normalize_dns(pat) == host


def hostname_matches(cert: x509.Certificate, hostname: str) -> str | None:
    """The subjectAltName entry of ``cert`` that matches ``hostname``, or ``None``.

    Wildcards (``*.example.com``) match exactly one left-most label; IP addresses
    match only IP entries; the subject common name is ignored (as browsers do).
    """
    for name in _verify.certificate_names(cert):
        if _name_matches(name, hostname):
            return name
    return None


# --- a TLSConnection over a blocking socket ----------------------------------------------------


class _Channel(Channel):
    """:class:`aiotls.sync.Channel` (the sans-IO loop over a blocking socket, every wait
    bounded by a deadline) with the command line's messages: socket errors and waits on
    a finished connection are raised as :class:`CLIError`.
    """

    def network_error(self, exc: OSError, doing: str) -> Exception:
        return _network_error(exc, doing)

    def closed_error(self, waiting_for: str) -> Exception:
        return CLIError(f"the connection is already over ({waiting_for})")

    def aborted_error(self) -> Exception:
        return CLIError("the connection ended before the handshake completed",
                        cause="the connection was closed locally during the handshake")

    def receive(self, size: int, deadline: float, *, at_least_one: bool = False) -> bytes:
        """Read until ``size`` bytes arrived (or any data, with ``at_least_one``)."""
        got = bytearray()
        while len(got) < size and not (at_least_one and got):
            event = self.next_event(deadline, "waiting for data")
            if isinstance(event, DataReceived):
                got += event.data
            elif isinstance(event, CloseNotifyReceived | ConnectionTerminated):
                raise CLIError(
                    f"{self.peer} closed the connection after {len(got)} of {size} expected bytes",
                    cause="the peer finished early: it is not an echo server, or it failed",
                    hint="check the peer's logs",
                )
        return bytes(got)


def _set_versions(ctx: TLSContext, version: ssl.TLSVersion | None) -> None:
    if version is not None:
        ctx.minimum_version = version
        ctx.maximum_version = version


def _version_arg(args: argparse.Namespace) -> ssl.TLSVersion | None:
    if getattr(args, "tls12", False):
        return ssl.TLSVersion.TLSv1_2
    if getattr(args, "tls13", False):
        return ssl.TLSVersion.TLSv1_3
    return None


def _cipher_text(conn: TLSConnection) -> str:
    cipher = conn.cipher()
    if cipher is None:
        return "unknown"
    return f"{cipher[0]} ({cipher[2]}-bit key)" if cipher[2] else cipher[0]


# --- demo ----------------------------------------------------------------------------------------


def generate_demo_pki(directory: str, key_type: str = "ecdsa") -> ThrowawayPKI:
    """Write a throwaway CA and a localhost/127.0.0.1 server certificate into ``directory``.

    For demos and examples only: the certificates are valid for one day.  ``key_type`` is the
    server key (``ecdsa`` = P-256, ``rsa`` = 2048 bits, ``ed25519``); the CA is ECDSA P-256.
    The result has ``ca_file``, ``cert_file``, ``key_file``, ``ca_cert`` and ``server_cert``.
    """
    return generate_throwaway_pki(directory, key_type)


_generate_demo_pki = generate_demo_pki
_DemoPKI = ThrowawayPKI


@dataclass
class _DemoServer:
    """What the demo's server thread saw."""

    address: str = ""
    handshake: HandshakeCompleted | None = None
    received: list[bytes] = field(default_factory=list)
    close_notify_received: bool = False
    clean: bool = False
    error: BaseException | None = None


def _demo_server(listener: socket.socket, ctx: TLSContext, result: _DemoServer,
                 deadline: float) -> None:
    try:
        listener.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            sock, addr = listener.accept()
        except OSError as exc:
            raise _network_error(exc, "waiting for the client to connect") from None
        with sock:
            result.address = f"{addr[0]}:{addr[1]}"
            channel = _Channel(sock, TLSConnection(ctx, server_side=True), peer="the client",
                               io_timeout=2.0)
            result.handshake = channel.handshake(deadline)
            while True:
                event = channel.next_event(deadline, "waiting for the client's messages")
                if isinstance(event, DataReceived):
                    result.received.append(event.data)
                    channel.send(event.data.upper())
                elif isinstance(event, CloseNotifyReceived):
                    # The connection answers with its own close_notify while reading it;
                    # _Channel has already flushed that reply.
                    result.close_notify_received = True
                elif isinstance(event, ConnectionTerminated):
                    result.clean = True
                    return
    except BaseException as exc:  # reported by the main thread
        result.error = exc


def _cmd_demo(args: argparse.Namespace) -> int:
    out = sys.stdout
    started = time.monotonic()
    deadline = started + _DEMO_BUDGET
    version = _version_arg(args)
    key_type: str = args.key_type
    print("aiotls demo: a TLS server and a TLS client talking over loopback, in one process.",
          file=out)
    print(file=out)
    with tempfile.TemporaryDirectory(prefix="aiotls-demo-") as directory:
        t0 = time.perf_counter()
        pki = _generate_demo_pki(directory, key_type)
        pki_time = time.perf_counter() - t0
        now = _utcnow()

        server_ctx = TLSContext(ssl.PROTOCOL_TLS_SERVER)
        server_ctx.load_cert_chain(pki.cert_file, pki.key_file)
        server_ctx.set_alpn_protocols(_DEMO_SERVER_ALPN)
        _set_versions(server_ctx, version)

        client_ctx = TLSContext(ssl.PROTOCOL_TLS_CLIENT)  # verification and check_hostname ON
        client_ctx.load_verify_locations(cafile=pki.ca_file)
        client_ctx.set_alpn_protocols(_DEMO_CLIENT_ALPN)
        _set_versions(client_ctx, version)

        try:
            listener = socket.create_server(("127.0.0.1", args.port))
        except OSError as exc:
            raise CLIError(
                f"cannot listen on 127.0.0.1:{args.port}: {exc.strerror or exc}",
                cause="another program already uses this port" if args.port else
                "the operating system refused to open a loopback socket",
                hint="pick another --port, or leave it out to use a free one",
            ) from None
        with listener:
            port = listener.getsockname()[1]
            print("Setup", file=out)
            _row(out, "PKI", f"throwaway CA ({_key_text(pki.ca_cert)}) and server certificate "
                 f"({_key_text(pki.server_cert)}), made in {_ms(pki_time)} in {directory} "
                 "(deleted afterwards)")
            _row(out, "server", f"listening on 127.0.0.1:{port}; certificate for localhost and "
                 f"127.0.0.1; accepts ALPN {', '.join(_DEMO_SERVER_ALPN)}")
            _row(out, "client", f"connects as 'localhost', verification ON (trusts only the "
                 f"demo CA, checks the host name); offers ALPN {', '.join(_DEMO_CLIENT_ALPN)}")
            if version is not None:
                _row(out, "versions", f"both sides forced to {_version_label(version)}")
            print(file=out)

            server = _DemoServer()
            thread = threading.Thread(target=_demo_server, name="aiotls-demo-server",
                                      args=(listener, server_ctx, server, deadline), daemon=True)
            thread.start()
            try:
                client = _demo_client(out, port, client_ctx, pki, now, deadline)
            finally:
                thread.join(max(0.1, deadline - time.monotonic()))
            if thread.is_alive():
                raise CLIError("the demo server did not finish in time",
                               cause="the server thread is stuck waiting for the client",
                               hint="this is a bug in the demo; please report it")
            if server.error is not None:
                raise server.error

    print("Close", file=out)
    _row(out, "client", "sent close_notify")
    _row(out, "server", "received close_notify" if server.close_notify_received
         else "did NOT receive close_notify")
    _row(out, "server", "answered with its own close_notify and closed cleanly" if server.clean
         else "did not close cleanly")
    _row(out, "client", "received the server's close_notify: clean close, nothing truncated"
         if client else "the server closed without close_notify")
    print(file=out)
    if not (client and server.close_notify_received and server.clean):
        raise CLIError("the demo connection did not close cleanly",
                       cause="close_notify was not exchanged both ways (see 'Close' above)",
                       hint="this is a bug in aiotls; please report it with the output above")
    version_used = server.handshake.version if server.handshake else "?"
    total = time.monotonic() - started
    print(f"OK: {len(_DEMO_MESSAGES)} messages echoed over {version_used} with certificate "
          f"verification, closed cleanly; {total:.2f} s in all.", file=out)
    return EXIT_OK


def _version_label(version: ssl.TLSVersion) -> str:
    return {ssl.TLSVersion.TLSv1: "TLS 1.0", ssl.TLSVersion.TLSv1_1: "TLS 1.1",
            ssl.TLSVersion.TLSv1_2: "TLS 1.2", ssl.TLSVersion.TLSv1_3: "TLS 1.3"}.get(
        version, version.name)


def _demo_client(out: TextIO, port: int, ctx: TLSContext, pki: _DemoPKI,
                 now: datetime.datetime, deadline: float) -> bool:
    """The client half of the demo; prints the handshake, the certificate and the messages.
    Returns True if the server's close_notify arrived."""
    t0 = time.perf_counter()
    try:
        sock = socket.create_connection(("127.0.0.1", port),
                                        timeout=max(0.01, deadline - time.monotonic()))
    except OSError as exc:
        raise _network_error(exc, f"connecting to 127.0.0.1:{port}") from None
    with sock:
        tcp_time = time.perf_counter() - t0
        t1 = time.perf_counter()
        conn = TLSConnection(ctx, server_hostname="localhost")
        channel = _Channel(sock, conn, peer="the server", io_timeout=2.0)
        hs = channel.handshake(deadline)
        hs_time = time.perf_counter() - t1

        print(f"Handshake (TCP connect {_ms(tcp_time)}, TLS handshake {_ms(hs_time)}, "
              f"{channel.bytes_sent} bytes sent / {channel.bytes_received} received)", file=out)
        _row(out, "version", hs.version)
        _row(out, "cipher suite", _cipher_text(conn))
        _row(out, "key exchange", hs.group or "unknown")
        _row(out, "ALPN", f"{hs.alpn_protocol or 'none'} (client offered "
             f"{', '.join(_DEMO_CLIENT_ALPN)}; server accepts {', '.join(_DEMO_SERVER_ALPN)})")
        _row(out, "SNI", hs.server_name or "none")
        _row(out, "resumed", "yes" if hs.session_reused else "no (full handshake)")
        leaf = x509.load_der_x509_certificate(hs.peer_certificates[0])
        matched = hostname_matches(leaf, "localhost")
        _row(out, "verification", f"OK: chain leads to {_name(pki.ca_cert.subject)}; "
             f"'localhost' matches SAN {matched}")
        print(file=out)

        print("Server certificate", file=out)
        describe_certificate(out, leaf, now, full=False)
        print(file=out)

        print("Conversation (the server echoes in upper case)", file=out)
        t2 = time.perf_counter()
        for message in _DEMO_MESSAGES:
            data = message.encode()
            channel.send(data)
            print(f"  client -> server  {message!r}", file=out)
            reply = channel.receive(len(data), deadline)
            print(f"  server -> client  {reply.decode(errors='replace')!r}", file=out)
            if reply != data.upper():
                raise CLIError(f"the server answered {reply!r} instead of {data.upper()!r}",
                               cause="data was corrupted (this should be impossible with TLS)",
                               hint="please report this as a bug")
        print(f"  ({len(_DEMO_MESSAGES)} round trips in {_ms(time.perf_counter() - t2)})",
              file=out)
        print(file=out)
        return channel.close(deadline)


# --- certs ---------------------------------------------------------------------------------------


def load_certificates(path: str) -> list[x509.Certificate]:
    """All certificates in a PEM file (or a single DER certificate)."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise CLIError(f"cannot read {path!r}: {exc.strerror or exc}",
                       cause="the path is wrong or the file is not readable",
                       hint="check the path and the file's permissions") from None
    if b"-----BEGIN CERTIFICATE-----" in data:
        try:
            return list(x509.load_pem_x509_certificates(data))
        except ValueError as exc:
            raise CLIError(f"{path!r} holds a malformed PEM certificate: {exc}",
                           cause="the file was truncated or edited",
                           hint="download or export the certificate again") from None
    if b"-----BEGIN" in data:
        label = data.split(b"-----BEGIN", 1)[1].split(b"-----", 1)[0].strip().decode(
            "ascii", "replace")
        raise CLIError(f"{path!r} holds no certificate (found a PEM block '{label}')",
                       cause="this is another kind of PEM file, for example a private key",
                       hint="pass the file with '-----BEGIN CERTIFICATE-----' blocks")
    try:
        return [x509.load_der_x509_certificate(data)]
    except ValueError:
        raise CLIError(f"{path!r} holds no certificate",
                       cause="the file is neither PEM ('-----BEGIN CERTIFICATE-----') nor DER",
                       hint="pass a PEM or DER X.509 certificate file") from None


def _cmd_certs(args: argparse.Namespace) -> int:
    out = sys.stdout
    now = _utcnow()
    chain: list[x509.Certificate] = []
    number = 0
    for path in args.files:
        certs = load_certificates(path)
        count = f"{len(certs)} certificate{'s' if len(certs) != 1 else ''}"
        print(f"{path}: {count}", file=out)
        first = number + 1
        for i, cert in enumerate(certs):
            number += 1
            print(file=out)
            print(f"[{number}] {_name(cert.subject)}", file=out)
            describe_certificate(out, cert, now)
            if i + 1 < len(certs):
                _ok, text = _issued_by(cert, certs[i + 1])
                _row(out, "issued by next", f"[{number + 1}]: {text}")
            elif _crypto.certificate_is_self_issued_and_signed(cert):
                _row(out, "issued by", "itself (self-signed: a root, or a stand-alone cert)")
            elif len(certs) > 1:
                _row(out, "issued by", f"{_name(cert.issuer)} (not in this file)")
        if len(certs) > 1:
            links = [_issued_by(c, n)[0] for c, n in itertools.pairwise(certs)]
            verdict = ("each certificate is issued by the next" if all(links)
                       else "NOT a chain in leaf-first order (see 'issued by next' above)")
            print(f"\n[{first}]..[{number}]: {verdict}", file=out)
        chain.extend(certs)
        print(file=out)

    failed = False
    leaf = chain[0]
    if args.hostname:
        matched = hostname_matches(leaf, args.hostname)
        if matched is not None:
            print(f"host name {args.hostname!r}: matches the certificate (SAN {matched})", file=out)
        else:
            failed = True
            names = ", ".join(_verify.certificate_names(leaf)) or "no names at all"
            print(f"host name {args.hostname!r}: does NOT match", file=out)
            _print_error(CLIError(
                f"the certificate {_name(leaf.subject)} is not valid for {args.hostname!r}; "
                f"it is valid for: {names}",
                cause="the name is not in the certificate's subjectAltName (the common name "
                "is not used for matching)",
                hint="use one of the names listed, or re-issue the certificate with this name",
            ))

    if args.cafile:
        trust = _verify.TrustStore()
        anchors = load_certificates(args.cafile)
        trust.add(anchors)
        label = f"{args.cafile} ({len(anchors)} trusted certificate{'s' if len(anchors) != 1 else ''})"
        try:
            path = _verify.verify_chain(
                [_crypto.der_bytes(c) for c in chain], trust=trust, role="server",
                hostname=args.hostname or None, now=now,
            )
        except CertificateError as err:
            failed = True
            print(f"verification against {label}: FAILED", file=out)
            _print_error(err)
        else:
            checked = f", host name {args.hostname!r}" if args.hostname else ""
            print(f"verification against {label}: OK (chain, validity, usage{checked})",
                  file=out)
            _row(out, "path", " -> ".join(_name(c.subject) for c in path))
    return EXIT_FAILURE if failed else EXIT_OK


# --- connect -------------------------------------------------------------------------------------


def _cmd_connect(args: argparse.Namespace) -> int:
    out = sys.stdout
    host: str = args.host
    port: int = args.port
    servername: str = args.servername or host
    timeout: float = args.timeout
    ctx = TLSContext(ssl.PROTOCOL_TLS_CLIENT)
    if args.insecure:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        trust = "none: verification DISABLED by --insecure"
    elif args.cafile:
        ctx.load_verify_locations(cafile=args.cafile)
        trust = f"{args.cafile}"
    else:
        ctx.load_default_certs()
        trust = "the system's CA certificates"
    if args.alpn:
        ctx.set_alpn_protocols(args.alpn)
    _set_versions(ctx, _version_arg(args))

    deadline = time.monotonic() + timeout
    print(f"Connecting to {host}:{port} (server name {servername!r}, trusting {trust})", file=out)
    t0 = time.perf_counter()
    try:
        sock = socket.create_connection((host, port), timeout=timeout)
    except OSError as exc:
        raise _network_error(exc, f"connecting to {host}:{port}") from None
    with sock:
        tcp_time = time.perf_counter() - t0
        t1 = time.perf_counter()
        conn = TLSConnection(ctx, server_hostname=servername)
        channel = _Channel(sock, conn, peer=f"{host}:{port}", io_timeout=timeout)
        hs = channel.handshake(deadline)
        hs_time = time.perf_counter() - t1
        now = _utcnow()
        print(f"Handshake OK (TCP connect {_ms(tcp_time)}, TLS handshake {_ms(hs_time)})",
              file=out)
        _row(out, "version", hs.version)
        _row(out, "cipher suite", _cipher_text(conn))
        _row(out, "key exchange", hs.group or "unknown")
        offered = f" (offered {', '.join(args.alpn)})" if args.alpn else " (none offered)"
        _row(out, "ALPN", (hs.alpn_protocol or "none") + offered)
        _row(out, "SNI", "not sent (IP address)" if _verify.is_ip_address(servername)
             else servername)
        _row(out, "resumed", "yes" if hs.session_reused else "no (full handshake)")
        if args.insecure:
            _row(out, "verification", "DISABLED (--insecure): the server was NOT authenticated; "
                 "anyone on the path could impersonate it")
        else:
            _row(out, "verification", f"OK: chain trusted, {servername!r} matches the "
                 "certificate")
        chain = [x509.load_der_x509_certificate(d) for d in hs.peer_certificates]
        print(file=out)
        print(f"Server certificate chain ({len(chain)} certificate"
              f"{'s' if len(chain) != 1 else ''} sent)", file=out)
        for i, cert in enumerate(chain):
            print(f"  [{i}] {_name(cert.subject)}", file=out)
            describe_certificate(out, cert, now, full=False, indent=6)

        if args.send is not None:
            print(file=out)
            data = args.send.encode()
            channel.send(data)
            print(f"sent      {args.send!r}", file=out)
            try:
                reply = channel.receive(len(data), time.monotonic() + min(timeout, 5.0),
                                        at_least_one=True)
            except CLIError as err:
                print(f"no reply: {err.what}", file=out)
            else:
                print(f"received  {reply.decode(errors='replace')!r}", file=out)

        print(file=out)
        try:
            clean = channel.close(time.monotonic() + min(timeout, 2.0))
        except (CLIError, TLSError) as err:
            print(f"Close: close_notify sent; the server's did not arrive ({err.what}). "
                  "That is harmless once we are done.", file=out)
        else:
            print("Close: close_notify exchanged both ways (clean close)." if clean else
                  "Close: close_notify sent; the server closed without its own (harmless "
                  "for a client that is done).", file=out)
    return EXIT_OK


# --- serve ---------------------------------------------------------------------------------------


class _Log:
    """Thread-safe line printer for the server."""

    def __init__(self, out: TextIO) -> None:
        self._out = out
        self._lock = threading.Lock()

    def __call__(self, line: str) -> None:
        with self._lock:
            print(line, file=self._out, flush=True)


def _serve_one(sock: socket.socket, addr: str, ctx: TLSContext, timeout: float, log: _Log,
               done: Callable[[], None]) -> None:
    try:
        with sock:
            conn = TLSConnection(ctx, server_side=True)
            channel = _Channel(sock, conn, peer=addr, io_timeout=timeout)
            hs = channel.handshake(time.monotonic() + timeout)
            sni = hs.server_name or "none"
            if conn.ignored_server_name is not None:
                sni += f" (ignored the IP address {conn.ignored_server_name} sent as SNI)"
            log(f"[{addr}] handshake OK: {hs.version} {hs.cipher} {hs.group or '?'}"
                f" ALPN={hs.alpn_protocol or 'none'} SNI={sni}")
            echoed = 0
            while True:
                event = channel.next_event(time.monotonic() + timeout, "waiting for data")
                if isinstance(event, DataReceived):
                    channel.send(event.data)
                    echoed += len(event.data)
                elif isinstance(event, CloseNotifyReceived):
                    log(f"[{addr}] close_notify received and answered; echoed {echoed} bytes")
                elif isinstance(event, ConnectionTerminated):
                    log(f"[{addr}] closed cleanly"
                        + (" (EOF without close_notify, tolerated)" if event.truncated else ""))
                    return
    except (TLSError, CLIError) as err:
        lines = _error_lines(err)
        log("\n".join([f"[{addr}] {lines[0]}", *(f"[{addr}]   {line}" for line in lines[1:])]))
    except Exception as exc:  # keep serving other clients
        log(f"[{addr}] error: unexpected {type(exc).__name__}: {exc}")
    finally:
        done()


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _accept_loop(listener: socket.socket, slots: threading.BoundedSemaphore, ctx: TLSContext,
                 timeout: float, log: _Log) -> None:
    """Accept connections forever, one thread each, never more than ``slots`` at once."""
    while True:
        if not slots.acquire(timeout=0.5):
            continue  # all slots busy: wait (new clients queue in the listen backlog)
        try:
            sock, peer = listener.accept()
        except TimeoutError:
            slots.release()
            continue
        except OSError as exc:
            slots.release()
            log(f"accept failed: {exc}")
            time.sleep(0.1)
            continue
        addr = f"{peer[0]}:{peer[1]}"
        log(f"[{addr}] connected")
        threading.Thread(target=_serve_one, name=f"aiotls-serve-{addr}", daemon=True,
                         args=(sock, addr, ctx, timeout, log, slots.release)).start()


def _cmd_serve(args: argparse.Namespace) -> int:
    out = sys.stdout
    ctx = TLSContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(args.cert, args.key)
    if args.alpn:
        ctx.set_alpn_protocols(args.alpn)
    _set_versions(ctx, _version_arg(args))
    try:
        listener = socket.create_server((args.host, args.port))
    except OSError as exc:
        raise CLIError(f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}",
                       cause="the port is in use, or the address is not local to this machine",
                       hint="pick another --port or --host") from None
    log = _Log(out)
    slots = threading.BoundedSemaphore(args.max_connections)
    previous: Any = None
    if threading.current_thread() is threading.main_thread():
        # SIGTERM stops the server like Ctrl-C does: log "stopped" and exit 0.
        previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        with listener:
            listener.settimeout(0.5)  # wake up regularly so Ctrl-C is handled promptly
            host, port = listener.getsockname()[:2]
            leaf = load_certificates(args.cert)[0]
            log(f"aiotls echo server listening on {host}:{port} "
                f"(certificate {_name(leaf.subject)}, {_key_text(leaf)}; "
                f"at most {args.max_connections} connections at once; Ctrl-C to stop)")
            _accept_loop(listener, slots, ctx, args.timeout, log)
    except KeyboardInterrupt:
        log("stopped")
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    return EXIT_OK


# --- diagnose ------------------------------------------------------------------------------------


@dataclass
class _Probe:
    label: str
    accepted: bool
    detail: str


def _probe(host: str, port: int, servername: str, ctx: TLSContext,
           timeout: float) -> tuple[HandshakeCompleted | None, BaseException | None]:
    """One handshake attempt; (handshake, None) or (None, what went wrong)."""
    deadline = time.monotonic() + timeout
    try:
        sock = socket.create_connection((host, port), timeout=timeout)
    except OSError as exc:
        return None, _network_error(exc, f"connecting to {host}:{port}")
    with sock:
        conn = TLSConnection(ctx, server_hostname=servername)
        channel = _Channel(sock, conn, peer=f"{host}:{port}", io_timeout=timeout)
        try:
            hs = channel.handshake(deadline)
        except (TLSError, CLIError, OSError) as exc:
            return None, exc
        with contextlib.suppress(TLSError, CLIError, OSError):
            channel.close(time.monotonic() + min(timeout, 1.0))
        return hs, None


def _probe_context(version: ssl.TLSVersion | None = None, suite: str | None = None,
                   group: str | None = None) -> TLSContext:
    ctx = TLSContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False  # capability probes do not authenticate; verified separately
    ctx.verify_mode = ssl.CERT_NONE
    if version is not None:
        ctx.minimum_version = ctx.maximum_version = version
    if suite is not None:
        ctx.set_ciphers(suite)
        if "_DHE_" in suite:
            ctx.set_groups(["ffdhe2048", "ffdhe3072", "ffdhe4096"])
    elif version is not None and version < ssl.TLSVersion.TLSv1_2:
        ctx.set_ciphers(":".join(s.name for s in ALL_SUITES if not s.aead))
    if group is not None:
        ctx.set_groups([group])
    return ctx


def _refusal(exc: BaseException | None) -> str:
    if isinstance(exc, TLSError) and exc.alert is not None:
        return f"refused ({exc.alert.name})"
    if isinstance(exc, TLSError | CLIError):
        return f"refused ({getattr(exc, 'what', exc)})"
    return f"failed ({exc})"


def _cmd_diagnose(args: argparse.Namespace) -> int:
    """Probe which protocol versions, cipher suites and groups a server accepts, then
    verify its certificate, and explain anything that looks wrong."""
    out = sys.stdout
    host: str = args.host
    port: int = args.port
    servername: str = args.servername or host
    timeout: float = args.timeout
    print(f"Diagnosing {host}:{port} (server name {servername!r})", file=out)

    hs, exc = _probe(host, port, servername, _probe_context(), timeout)
    if hs is None and isinstance(exc, CLIError):
        raise exc  # nothing listens there: say so, with the network hint
    problems: list[str] = []

    print("\nProtocol versions", file=out)
    versions: dict[ssl.TLSVersion, bool] = {}
    for version in (ssl.TLSVersion.TLSv1_3, ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_1,
                    ssl.TLSVersion.TLSv1):
        got, err = _probe(host, port, servername, _probe_context(version), timeout)
        versions[version] = got is not None
        legacy = version < ssl.TLSVersion.TLSv1_2
        text = "accepted" if got else _refusal(err)
        if got and legacy:
            text += "  <- obsolete and insecure (RFC 8996): disable it on the server"
            problems.append(f"{_version_label(version)} is enabled")
        _row(out, _version_label(version), text)
    if not versions[ssl.TLSVersion.TLSv1_3]:
        problems.append("TLS 1.3 is not offered")

    print("\nCipher suites (aiotls's, one at a time)", file=out)
    for suite in ALL_SUITES:
        version = ssl.TLSVersion.TLSv1_3 if suite.kex is None else ssl.TLSVersion.TLSv1_2
        if suite.protocol == "TLSv1" and not suite.aead:
            version = ssl.TLSVersion.TLSv1_2
        if not versions.get(version):
            continue
        got, err = _probe(host, port, servername, _probe_context(version, suite.name), timeout)
        text = "accepted" if got else _refusal(err)
        if got and not suite.aead:
            text += "  <- CBC: prefer AEAD suites"
        print(f"  {suite.openssl_name:<32} {text}", file=out)

    print("\nKey-exchange groups", file=out)
    group_version = ssl.TLSVersion.TLSv1_3 if versions[ssl.TLSVersion.TLSv1_3] \
        else ssl.TLSVersion.TLSv1_2
    for group in ALL_GROUPS:
        got, err = _probe(host, port, servername, _probe_context(group_version, group=group),
                          timeout)
        _row(out, group, "accepted" if got else _refusal(err))

    print("\nCertificate verification", file=out)
    ctx = TLSContext(ssl.PROTOCOL_TLS_CLIENT)
    if args.cafile:
        ctx.load_verify_locations(cafile=args.cafile)
    else:
        ctx.load_default_certs()
    ctx.set_alpn_protocols(["h2", "http/1.1"])
    got, err = _probe(host, port, servername, ctx, timeout)
    if got is not None:
        _row(out, "result", f"OK: the chain is trusted and matches {servername!r}")
        _row(out, "ALPN", f"{got.alpn_protocol or 'none'} (offered h2, http/1.1)")
        if got.peer_certificates:
            leaf = x509.load_der_x509_certificate(got.peer_certificates[0])
            _, status = validity_status(leaf, _utcnow())
            _row(out, "leaf", f"{_name(leaf.subject)}; {status}")
    else:
        problems.append("the certificate does not verify")
        for line in _error_lines(err) if err is not None else []:
            print(f"  {line}", file=out)

    print(file=out)
    if problems:
        print("Findings: " + "; ".join(problems) + ".", file=out)
        return EXIT_FAILURE
    print("Findings: nothing wrong found (TLS 1.3 offered, no obsolete versions, certificate "
          "verifies).", file=out)
    return EXIT_OK


# --- argument parsing ----------------------------------------------------------------------------

_EPILOG = """\
examples:
  python -m aiotls demo                  server + client over loopback, with a report
  python -m aiotls demo --tls12 --key-type rsa
  python -m aiotls certs server.pem --hostname example.com --cafile ca.pem
  python -m aiotls serve --cert server.pem --key server-key.pem --port 8443
  python -m aiotls connect localhost 8443 --cafile ca.pem --send hello

exit status: 0 success; 1 failure, printed as error / likely cause / fix;
2 usage error.  'python -m aiotls COMMAND --help' shows a command's options.
"""


def _text(text: str) -> str:
    return textwrap.dedent(text).strip("\n")


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """Descriptions and epilogs as written; no bare ``COMMAND`` line above the command list."""

    def __init__(self, prog: str) -> None:
        super().__init__(prog, max_help_position=30)

    def _format_action(self, action: argparse.Action) -> str:
        text = super()._format_action(action)
        if action.nargs == argparse.PARSER:
            text = text.split("\n", 1)[1]
        return text


def _add_version_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--tls12", action="store_true", help="use TLS 1.2 only")
    group.add_argument("--tls13", action="store_true", help="use TLS 1.3 only")


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid port {text!r}: not a number") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"invalid port {value}: must be 0 to 65535")
    return value


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive, not {text}")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, not {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``python -m aiotls``."""
    parser = argparse.ArgumentParser(
        prog="python -m aiotls", formatter_class=_Formatter, epilog=_EPILOG,
        description=_text("""
            aiotls: a readable sans-IO TLS 1.2/1.3 engine.
            This tool shows it at work, inspects certificates and tests TLS servers.
        """),
    )
    parser.add_argument("--version", action="version", version=f"aiotls {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")

    demo = sub.add_parser(
        "demo", formatter_class=_Formatter,
        help="run a TLS server and client over loopback and explain what happened",
        description=_text("""
            Generate a throwaway CA and a certificate for localhost, start a TLS server
            on 127.0.0.1 and connect a client to it (certificate and host name verified),
            exchange a few messages, close with close_notify both ways, and print a
            report: version, cipher suite, key exchange, ALPN, the server certificate,
            timings.  Takes well under 5 seconds; touches only loopback.
        """),
    )
    demo.add_argument("--port", type=_port, default=0,
                      help="port for the server (default: 0, a free one)")
    demo.add_argument("--key-type", choices=_KEY_TYPES, default="ecdsa",
                      help="server key: ecdsa (P-256, default), rsa (2048 bits) or ed25519")
    _add_version_options(demo)
    demo.set_defaults(func=_cmd_demo)

    certs = sub.add_parser(
        "certs", formatter_class=_Formatter,
        help="inspect certificates; check a host name; verify a chain",
        description=_text("""
            Print every certificate in the given PEM (or DER) files: names, validity
            (and whether it is expired right now), subjectAltName, key, signature
            algorithm, usages, SHA-256 fingerprint, and whether each certificate in a
            file is issued by the next one.

            For --hostname and --cafile, the first certificate given is the leaf and
            the others are its chain, in the order given.
        """),
        epilog="exit status: 1 if --hostname does not match or --cafile verification fails.",
    )
    certs.add_argument("files", nargs="+", metavar="FILE", help="certificate file(s)")
    certs.add_argument("--hostname", metavar="NAME",
                       help="check that the leaf certificate is valid for this host name or IP")
    certs.add_argument("--cafile", metavar="CA",
                       help="verify the chain as a TLS server chain against the CA "
                       "certificates in this file (and the --hostname, if given)")
    certs.set_defaults(func=_cmd_certs)

    connect = sub.add_parser(
        "connect", formatter_class=_Formatter,
        help="handshake with a TLS server and show what was negotiated",
        description=_text("""
            Connect to HOST PORT, perform a TLS handshake (verifying the server's
            certificate and name unless --insecure), print the negotiated parameters
            and the server's certificates, optionally send a message and print the
            reply, then close with close_notify.
        """),
    )
    connect.add_argument("host", metavar="HOST", help="server host name or IP address")
    connect.add_argument("port", metavar="PORT", type=_port, help="server port")
    connect.add_argument("--servername", metavar="NAME",
                         help="name to send as SNI and to verify (default: HOST)")
    trust = connect.add_mutually_exclusive_group()
    trust.add_argument("--cafile", metavar="FILE",
                       help="trust the CA certificates in FILE (default: the system's CAs)")
    trust.add_argument("--insecure", action="store_true",
                       help="do not verify the server's certificate (testing only!)")
    connect.add_argument("--alpn", metavar="PROTO", action="append",
                         help="offer this ALPN protocol (repeat for several, preferred first)")
    connect.add_argument("--send", metavar="TEXT", help="send TEXT and print the reply")
    connect.add_argument("--timeout", type=_positive, default=10.0, metavar="SECONDS",
                         help="give up after this long (default: 10)")
    _add_version_options(connect)
    connect.set_defaults(func=_cmd_connect)

    serve = sub.add_parser(
        "serve", formatter_class=_Formatter,
        help="run a TLS echo server",
        description=_text("""
            Serve TLS on HOST:PORT and echo back whatever each client sends, one thread
            per connection (at most --max-connections at once).  Logs handshakes,
            closes and errors.  Stop it with Ctrl-C.
        """),
    )
    serve.add_argument("--cert", required=True, metavar="FILE",
                       help="certificate chain, PEM, leaf first")
    serve.add_argument("--key", required=True, metavar="FILE", help="private key, PEM")
    serve.add_argument("--host", default="127.0.0.1",
                       help="address to listen on (default: 127.0.0.1)")
    serve.add_argument("--port", type=_port, default=8443,
                       help="port to listen on (default: 8443; 0 picks a free one)")
    serve.add_argument("--alpn", metavar="PROTO", action="append",
                       help="accept this ALPN protocol (repeat for several)")
    serve.add_argument("--max-connections", type=_positive_int, default=16, metavar="N",
                       help="serve at most N connections at once (default: 16)")
    serve.add_argument("--timeout", type=_positive, default=30.0, metavar="SECONDS",
                       help="drop a connection idle for this long (default: 30)")
    _add_version_options(serve)
    serve.set_defaults(func=_cmd_serve)

    diagnose = sub.add_parser(
        "diagnose", formatter_class=_Formatter,
        help="probe which versions, suites and groups a server accepts; verify it",
        description="Connect to HOST PORT many times: once per protocol version (TLS 1.3 down "
        "to TLS 1.0), per cipher suite and per key-exchange group, without authenticating, "
        "to learn what the server accepts; then once more with verification, to check its "
        "certificate. Obsolete versions, missing TLS 1.3 and certificate problems are listed "
        "as findings (exit status 1).",
    )
    diagnose.add_argument("host", metavar="HOST", help="server host name or IP address")
    diagnose.add_argument("port", metavar="PORT", type=_port, help="server port")
    diagnose.add_argument("--servername", metavar="NAME",
                          help="name to send as SNI and to verify (default: HOST)")
    diagnose.add_argument("--cafile", metavar="FILE",
                          help="trust the CA certificates in FILE (default: the system's CAs)")
    diagnose.add_argument("--timeout", type=_positive, default=5.0, metavar="SECONDS",
                          help="per-attempt timeout (default: 5)")
    diagnose.set_defaults(func=_cmd_diagnose)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    func: Callable[[argparse.Namespace], int] | None = getattr(args, "func", None)
    if func is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        return func(args)
    except (TLSError, CLIError) as err:
        sys.stdout.flush()
        _print_error(err)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # stdout was closed early (``python -m aiotls demo | head``): stop quietly.
        with contextlib.suppress(OSError, ValueError, AttributeError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        return EXIT_FAILURE
