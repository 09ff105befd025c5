"""``diagnose``: probe what a server accepts and verify its certificate.

:func:`diagnose` connects many times -- once per protocol version, per cipher suite and
per key-exchange group, without authenticating -- then once more with verification, and
returns a :class:`DiagnoseReport` with the findings.  Each section is also handed to
``progress`` as soon as it is known (the command line prints it then: a remote server
can take a while).  Nothing here prints.
"""

from __future__ import annotations

import argparse
import contextlib
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from cryptography import x509

from ..connection import TLSConnection
from ..context import ALL_GROUPS, ALL_SUITES, TLSContext
from ..errors import TLSError
from ..events import HandshakeCompleted
from ._args import (
    Render,
    add_client_certificate_options,
    add_json_option,
    add_target_arguments,
    formatter,
    positive,
)
from ._common import (
    EXIT_FAILURE,
    EXIT_OK,
    CLIChannel,
    CLIError,
    ErrorInfo,
    client_words,
    error_info,
    network_error,
    server_name,
    version_label,
)
from ._facts import CertificateFacts, certificate_facts, utcnow
from ._target import parse_target
from .connect import await_verdict, load_client_certificate, verdict_window

VERSIONS = (ssl.TLSVersion.TLSv1_3, ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_1,
            ssl.TLSVersion.TLSv1)
VERIFY_ALPN = ("h2", "http/1.1")


@dataclass(frozen=True)
class DiagnoseTarget:
    host: str
    port: int
    servername: str


@dataclass(frozen=True)
class Probe:
    """One handshake attempt."""

    label: str
    """The version (``TLS 1.2``), suite (OpenSSL name) or group tried."""
    outcome: Literal["accepted", "refused", "failed"]
    """``refused``: a TLS or network error; ``failed``: anything else."""
    error: ErrorInfo | None
    warning: str | None
    """Why an accepted one is a problem (an obsolete version, a CBC suite)."""


@dataclass(frozen=True)
class ProbeSection:
    kind: Literal["versions", "suites", "groups"]
    probes: tuple[Probe, ...]

    def accepted(self, label: str) -> bool:
        return any(p.label == label and p.outcome == "accepted" for p in self.probes)


@dataclass(frozen=True)
class CertificateCheck:
    """The handshake with verification on."""

    servername: str
    ok: bool
    alpn: str | None
    alpn_offered: tuple[str, ...]
    leaf: CertificateFacts | None
    """The server's certificate, when the handshake succeeded."""
    error: ErrorInfo | None


@dataclass(frozen=True)
class Findings:
    problems: tuple[str, ...]
    """What looks wrong; empty when nothing does."""


@dataclass(frozen=True)
class DiagnoseReport:
    target: DiagnoseTarget
    versions: ProbeSection
    suites: ProbeSection
    groups: ProbeSection
    certificate: CertificateCheck
    findings: Findings

    @property
    def ok(self) -> bool:
        return not self.findings.problems


#: The error code of a server that requires a client certificate this client lacks.
CLIENT_CERTIFICATE_REQUIRED = "client-certificate-required"


def _attempt(target: DiagnoseTarget, ctx: TLSContext, timeout: float,
             with_certificate: bool = False,
             ) -> tuple[HandshakeCompleted | None, BaseException | None]:
    """One handshake, and the server's verdict when it asked for a client certificate;
    (handshake or None, what went wrong or None)."""
    deadline = time.monotonic() + timeout
    try:
        sock = socket.create_connection((target.host, target.port), timeout=timeout)
    except OSError as exc:
        return None, network_error(exc, f"connecting to {target.host}:{target.port}")
    started = time.perf_counter()
    with sock:
        conn = TLSConnection(ctx, server_hostname=target.servername)
        channel = CLIChannel(sock, conn, peer=f"{target.host}:{target.port}", io_timeout=timeout)
        try:
            hs = channel.handshake(deadline)
        except (TLSError, CLIError, OSError) as exc:
            return None, exc
        if conn.requested_client_ca_names is not None:
            try:
                window = verdict_window(time.perf_counter() - started, timeout)
                await_verdict(channel, conn, time.monotonic() + window, with_certificate)
            except (TLSError, CLIError, OSError) as exc:
                return hs, exc
        with contextlib.suppress(TLSError, CLIError, OSError):
            channel.close(time.monotonic() + min(timeout, 1.0))
        return hs, None


def _needs_client_certificate(err: BaseException | None) -> bool:
    return getattr(err, "code", None) == CLIENT_CERTIFICATE_REQUIRED


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


def _probe(label: str, target: DiagnoseTarget, ctx: TLSContext, timeout: float,
           warning: str | None = None, with_certificate: bool = False) -> Probe:
    _, err = _attempt(target, ctx, timeout, with_certificate)
    if err is None or _needs_client_certificate(err):
        # (a server that went as far as asking for a client certificate accepted this)
        return Probe(label, "accepted", None, warning)
    outcome: Literal["refused", "failed"] = \
        "refused" if isinstance(err, TLSError | CLIError) else "failed"
    return Probe(label, outcome, error_info(client_words(err)), None)


def _check_certificate(target: DiagnoseTarget, ctx: TLSContext,
                       timeout: float, with_certificate: bool) -> CertificateCheck:
    ctx.set_alpn_protocols(VERIFY_ALPN)
    hs, err = _attempt(target, ctx, timeout, with_certificate)
    if err is not None and not _needs_client_certificate(err):
        return CertificateCheck(target.servername, False, None, VERIFY_ALPN, None,
                                error_info(client_words(err)))
    # (a refused client certificate comes after the server's certificate was verified)
    leaf = certificate_facts(x509.load_der_x509_certificate(hs.peer_certificates[0]), utcnow()) \
        if hs is not None and hs.peer_certificates else None
    return CertificateCheck(target.servername, True, hs.alpn_protocol if hs else None,
                            VERIFY_ALPN, leaf, None)


def diagnose(target: DiagnoseTarget, *, cafile: str | None = None, timeout: float = 5.0,
             progress: Callable[[object], None] | None = None, cert: str | None = None,
             key: str | None = None) -> DiagnoseReport:
    """Probe ``target`` (with the client certificate ``cert``/``key`` if given); raises
    :class:`CLIError` when nothing answers there at all."""
    def report(section: object) -> None:
        if progress is not None:
            progress(section)

    def context(version: ssl.TLSVersion | None = None, suite: str | None = None,
                group: str | None = None) -> TLSContext:
        ctx = _probe_context(version, suite, group)
        if cert is not None:
            load_client_certificate(ctx, cert, key)
        return ctx

    mtls = cert is not None
    hs, exc = _attempt(target, context(), timeout, mtls)
    if hs is None and isinstance(exc, CLIError) and not _needs_client_certificate(exc):
        raise exc  # nothing listens there: say so, with the network hint
    if hs is None and exc is not None and str(getattr(exc, "code", "")).startswith("not-tls"):
        raise exc  # (the port speaks another protocol: every probe would say only that)
    problems: list[str] = []
    if _needs_client_certificate(exc):
        # the first cause: the probes below still learn what the server accepts
        problems.append("the server requires a client certificate (mutual TLS), and none "
                        "was given: pass --cert FILE --key FILE")

    versions = ProbeSection("versions", tuple(
        _probe(version_label(v), target, context(v), timeout,
               "obsolete and insecure (RFC 8996): disable it on the server"
               if v < ssl.TLSVersion.TLSv1_2 else None, mtls)
        for v in VERSIONS))
    report(versions)
    problems += [f"{p.label} is enabled" for p in versions.probes
                 if p.outcome == "accepted" and p.warning]
    accepted = [v for v in VERSIONS if versions.accepted(version_label(v))]
    has_13 = ssl.TLSVersion.TLSv1_3 in accepted
    if not accepted:
        problems.insert(0, "no protocol version in common: the server refused TLS 1.3 down to "
                        "TLS 1.0 (it may speak only SSL 3.0, or use suites or groups no "
                        "client offers)")
    elif accepted[0] < ssl.TLSVersion.TLSv1_2:
        problems[:] = [p for p in problems if not p.endswith(" is enabled")]  # (said below)
        problems.insert(0, "the server offers only obsolete versions ("
                        + ", ".join(version_label(v) for v in accepted) + "; RFC 8996): "
                        "current clients, aiotls's included, refuse to connect; enable TLS "
                        "1.2 and 1.3 on the server")
    elif not has_13:
        problems.append("TLS 1.3 is not offered")

    suite_probes = []
    for suite in ALL_SUITES:
        version = ssl.TLSVersion.TLSv1_3 if suite.kex is None else ssl.TLSVersion.TLSv1_2
        if not suite.aead and version not in accepted:
            # (a CBC suite is also a TLS 1.1/1.0 suite: probed at the best of those)
            version = next((v for v in accepted if v < ssl.TLSVersion.TLSv1_2), version)
        if version not in accepted:
            continue
        suite_probes.append(_probe(suite.openssl_name, target, context(version, suite.name),
                                   timeout, None if suite.aead else "CBC: prefer AEAD suites",
                                   mtls))
    suites = ProbeSection("suites", tuple(suite_probes))
    report(suites)

    # (groups at the best version the server takes; none to probe without one)
    # (below TLS 1.2 only the elliptic curves: aiotls has no CBC suite with FFDHE)
    groups = ProbeSection("groups", tuple(
        _probe(group, target, context(accepted[0], group=group), timeout, None, mtls)
        for group in ALL_GROUPS
        if accepted[0] >= ssl.TLSVersion.TLSv1_2 or not group.startswith("ffdhe"))
        if accepted else ())
    report(groups)

    verify_ctx = TLSContext(ssl.PROTOCOL_TLS_CLIENT)
    if accepted and accepted[0] < verify_ctx.minimum_version:
        verify_ctx.minimum_version = accepted[0]  # (the certificate, at the version it has)
        if accepted[0] < ssl.TLSVersion.TLSv1_2:
            verify_ctx.set_ciphers(":".join(s.name for s in ALL_SUITES if not s.aead))
    if cafile:
        verify_ctx.load_verify_locations(cafile=cafile)
    else:
        verify_ctx.load_default_certs()
    if cert is not None:
        load_client_certificate(verify_ctx, cert, key)
    certificate = _check_certificate(target, verify_ctx, timeout, mtls)
    report(certificate)
    if not certificate.ok and accepted:
        problems.append("the certificate does not verify")
    return DiagnoseReport(target, versions, suites, groups, certificate,
                          Findings(tuple(problems)))


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "diagnose", formatter_class=formatter,
        help="probe which versions, suites and groups a server accepts; verify it",
        description="Connect to HOST PORT many times: once per protocol version (TLS 1.3 down "
        "to TLS 1.0), per cipher suite and per key-exchange group, without authenticating, "
        "to learn what the server accepts; then once more with verification, to check its "
        "certificate. Obsolete versions, missing TLS 1.3 and certificate problems are listed "
        "as findings (exit status 1).",
    )
    add_target_arguments(parser)
    parser.add_argument("--servername", metavar="NAME",
                        help="name to send as SNI and to verify (default: HOST)")
    parser.add_argument("--cafile", metavar="FILE",
                        help="trust the CA certificates in FILE (default: the system's CAs)")
    add_client_certificate_options(parser)
    parser.add_argument("--timeout", type=positive, default=5.0, metavar="SECONDS",
                        help="per-attempt timeout (default: 5)")
    add_json_option(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace, render: Render) -> int:
    host, port = parse_target(args.host, args.port)
    target = DiagnoseTarget(host, port, server_name(args.servername or host))
    render(target)
    report = diagnose(target, cafile=args.cafile, timeout=args.timeout, progress=render,
                      cert=args.cert, key=args.key)
    render(report.findings)
    return EXIT_OK if report.ok else EXIT_FAILURE
