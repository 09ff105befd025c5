"""Pieces every command shares: :class:`CLIError`, errors as plain data, the blocking
channel with the command line's messages, protocol-version options, and reading
certificate files."""

from __future__ import annotations

import socket
import ssl
from dataclasses import dataclass

from cryptography import x509

from ..connection import TLSConnection
from ..context import TLSContext
from ..errors import TLSError
from ..events import CloseNotifyReceived, ConnectionTerminated, DataReceived
from ..sync import Channel

#: Exit statuses.
EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2


class CLIError(Exception):
    """A failure outside TLS proper (network, files, timeouts), in aiotls's three-sentence
    shape: what happened, the likely cause, and the fix; ``code`` names the kind."""

    def __init__(self, what: str, *, cause: str = "", hint: str = "",
                 code: str = "cli-error") -> None:
        super().__init__(what)
        self.what = what
        self.cause = cause
        self.hint = hint
        self.code = code


class UsageError(CLIError):
    """A command line that cannot be run as given (exit status 2)."""

    def __init__(self, what: str, *, cause: str = "", hint: str = "") -> None:
        super().__init__(what, cause=cause, hint=hint, code="usage")


@dataclass(frozen=True)
class ErrorInfo:
    """An error as plain data: what happened, the likely cause, the fix."""

    what: str
    cause: str = ""
    hint: str = ""
    code: str = ""
    """The error's stable ``code`` (``certificate-expired``, ``connection-refused``...)."""
    alert: str | None = None
    """The TLS alert sent or received for it, if any (``unknown_ca``...)."""


def error_info(err: BaseException | ErrorInfo) -> ErrorInfo:
    """The :class:`ErrorInfo` of an aiotls error, a :class:`CLIError` or anything else."""
    if isinstance(err, ErrorInfo):
        return err
    if isinstance(err, TLSError):
        return ErrorInfo(err.what, err.cause, err.hint, err.code,
                         err.alert.name if err.alert is not None else None)
    if isinstance(err, CLIError):
        return ErrorInfo(err.what, err.cause, err.hint, err.code)
    return ErrorInfo(str(err) or type(err).__name__, code=type(err).__name__)


def network_error(exc: OSError, doing: str) -> CLIError:
    """Turn a socket error into a :class:`CLIError` with advice."""
    detail = exc.strerror or str(exc) or type(exc).__name__
    if isinstance(exc, socket.gaierror):
        return CLIError(f"cannot resolve the host name while {doing}: {detail}",
                        cause="the name does not exist in DNS, or there is no network",
                        hint="check the spelling of the host name, or use an IP address",
                        code="name-resolution-failed")
    if isinstance(exc, ConnectionRefusedError):
        return CLIError(f"connection refused while {doing}",
                        cause="nothing is listening on that port (or a firewall rejects it)",
                        hint="check the host and port, and that the server is running",
                        code="connection-refused")
    if isinstance(exc, ConnectionResetError | BrokenPipeError | ConnectionAbortedError):
        return CLIError(f"the peer reset the connection while {doing}",
                        cause="the peer aborted the connection without a TLS alert (it may not "
                        "speak TLS on this port, or it rejected our hello abruptly)",
                        hint="check the peer's logs and that the port serves TLS",
                        code="connection-reset")
    if isinstance(exc, TimeoutError):
        return CLIError(f"timed out while {doing}",
                        cause="the peer does not answer: wrong address, a firewall dropping "
                        "packets, or a busy server",
                        hint="check the host and port; raise --timeout if the peer is slow",
                        code="timeout")
    return CLIError(f"network error while {doing}: {detail}",
                    cause="the operating system reported a socket error",
                    hint="check the address and the network", code="network-error")


#: Hints in the command line's terms for the errors a client meets, by code (the library's
#: own hints name its API: load_verify_locations(), server_hostname...).
_CLIENT_HINTS = {
    "certificate-unknown-ca": "pass the CA that issued the server's certificate with --cafile "
    "FILE; if the server leaves out an intermediate certificate, fix the server's chain file; "
    "--insecure skips verification (testing only)",
    "certificate-self-signed": "trust that certificate explicitly with --cafile FILE, or give "
    "the server a CA-issued one; --insecure skips verification (testing only)",
    "certificate-no-trust-anchors": "pass --cafile FILE with the CA certificates to trust (no "
    "system CA store was found here)",
    "hostname-mismatch": "connect with a name the certificate holds (--servername NAME), or "
    "re-issue the certificate with this name",
    "ip-address-mismatch": "connect by a name the certificate holds (--servername NAME), or "
    "re-issue the certificate with this IP address in subjectAltName",
    "protocol-version": "upgrade the server to TLS 1.2 or 1.3 ('python -m aiotls diagnose HOST' "
    "shows which versions it offers)",
    "not-tls": "check the host and port: the server does not speak TLS there",
    "alert-no-application-protocol": "offer a protocol the server speaks with --alpn PROTO ("
    "'python -m aiotls diagnose HOST --alpn PROTO' checks one), or leave --alpn out",
    "alert-unrecognized-name": "send a name the server serves with --servername NAME",
}


def client_words(err: BaseException) -> BaseException | ErrorInfo:
    """``err`` as a client command (connect, diagnose) prints it: the hint in its flags."""
    hint = _CLIENT_HINTS.get(getattr(err, "code", ""))
    if hint is None or not isinstance(err, TLSError):
        return err
    info = error_info(err)
    return ErrorInfo(info.what, info.cause, hint, info.code, info.alert)


class CLIChannel(Channel):
    """:class:`aiotls.sync.Channel` (the sans-IO loop over a blocking socket, every wait
    bounded by a deadline) with the command line's messages: socket errors and waits on
    a finished connection are raised as :class:`CLIError`."""

    def network_error(self, exc: OSError, doing: str) -> Exception:
        if isinstance(exc, TimeoutError):
            # (TCP connected: the peer is there, and silent)
            return CLIError(f"timed out while {doing}",
                            cause="the server accepted the TCP connection but does not answer "
                            "in TLS: it may speak another protocol on this port (one where "
                            "the client speaks first), or it is overloaded",
                            hint="check that this port serves TLS; raise --timeout for a slow "
                            "server", code="timeout")
        return network_error(exc, doing)

    def closed_error(self, waiting_for: str) -> Exception:
        return CLIError(f"the connection is already over ({waiting_for})",
                        code="connection-over")

    def aborted_error(self) -> Exception:
        return CLIError("the connection ended before the handshake completed",
                        cause="the connection was closed locally during the handshake",
                        code="handshake-aborted")

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
                    hint="check the peer's logs", code="peer-closed-early",
                )
        return bytes(got)


def server_name(name: str) -> str:
    """A host name as TLS carries it: Unicode names IDNA-encoded (``bücher.example`` ->
    ``xn--bcher-kva.example``); :class:`CLIError` when that is impossible."""
    try:
        return name if name.isascii() else name.encode("idna").decode("ascii")
    except UnicodeError as exc:
        raise CLIError(f"{name!r} is not a valid host name: {exc}",
                       cause="a label is empty, too long, or uses characters IDNA forbids",
                       hint="check the spelling, or pass the A-label (xn--...) form",
                       code="invalid-server-name") from None


# --- protocol versions and negotiated parameters ----------------------------------------------

_VERSION_LABELS = {ssl.TLSVersion.TLSv1: "TLS 1.0", ssl.TLSVersion.TLSv1_1: "TLS 1.1",
                   ssl.TLSVersion.TLSv1_2: "TLS 1.2", ssl.TLSVersion.TLSv1_3: "TLS 1.3"}


def version_label(version: ssl.TLSVersion) -> str:
    """``TLS 1.2`` for ``ssl.TLSVersion.TLSv1_2``."""
    return _VERSION_LABELS.get(version, version.name)


def set_versions(ctx: TLSContext, version: ssl.TLSVersion | None) -> None:
    """Pin ``ctx`` to one protocol version (``None``: leave the defaults)."""
    if version is not None:
        ctx.minimum_version = version
        ctx.maximum_version = version


def cipher_text(conn: TLSConnection) -> str:
    """The negotiated suite with its key size: ``TLS_AES_128_GCM_SHA256 (128-bit key)``."""
    cipher = conn.cipher()
    if cipher is None:
        return "unknown"
    return f"{cipher[0]} ({cipher[2]}-bit key)" if cipher[2] else cipher[0]


# --- certificate files ----------------------------------------------------------------------


def load_certificates(path: str) -> list[x509.Certificate]:
    """All certificates in a PEM file (or a single DER certificate); :class:`CLIError`
    when there are none."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise CLIError(f"cannot read {path!r}: {exc.strerror or exc}",
                       cause="the path is wrong or the file is not readable",
                       hint="check the path and the file's permissions",
                       code="file-unreadable") from None
    if b"-----BEGIN CERTIFICATE-----" in data:
        try:
            return list(x509.load_pem_x509_certificates(data))
        except ValueError as exc:
            raise CLIError(f"{path!r} holds a malformed PEM certificate: {exc}",
                           cause="the file was truncated or edited",
                           hint="download or export the certificate again",
                           code="certificate-file-malformed") from None
    if b"-----BEGIN" in data:
        label = data.split(b"-----BEGIN", 1)[1].split(b"-----", 1)[0].strip().decode(
            "ascii", "replace")
        raise CLIError(f"{path!r} holds no certificate (found a PEM block '{label}')",
                       cause="this is another kind of PEM file, for example a private key",
                       hint="pass the file with '-----BEGIN CERTIFICATE-----' blocks",
                       code="no-certificate")
    try:
        return [x509.load_der_x509_certificate(data)]
    except ValueError:
        raise CLIError(f"{path!r} holds no certificate",
                       cause="the file is neither PEM ('-----BEGIN CERTIFICATE-----') nor DER",
                       hint="pass a PEM or DER X.509 certificate file",
                       code="no-certificate") from None


def load_cert_files(ctx: TLSContext, cert: str, key: str | None, code: str) -> None:
    """``--cert``/``--key`` into ``ctx``; a :class:`CLIError` with ``code`` that names the
    usual mistakes (missing, swapped, mismatched, encrypted) when they do not load."""
    try:
        ctx.load_cert_chain(cert, key)
    except (OSError, ValueError, TLSError, ssl.SSLError) as exc:
        detail = getattr(exc, "what", None) or getattr(exc, "strerror", None) or str(exc)
        raise CLIError(
            f"cannot use --cert {cert!r}" + (f" --key {key!r}" if key else "") + f": {detail}",
            cause="a file is missing or unreadable, the two are swapped, the key does not "
            "match the certificate, or the key is encrypted",
            hint="--cert takes the certificate chain (PEM, leaf first) and --key its private "
            "key (PEM, unencrypted); 'python -m aiotls certs FILE' shows what a file holds",
            code=code) from None
