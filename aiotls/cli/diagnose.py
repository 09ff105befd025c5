"""``diagnose``: find out why TLS to a server fails, or what is wrong with it.

:func:`diagnose` first connects as a default client would.  Then it probes, a bounded
number at a time, which versions, cipher suites and key-exchange groups the server
accepts (without authenticating), checks the certificate with verification on and the
chain as the server sent it, and whether sessions resume.  The findings put the *first
cause* first and leave out what only follows from it (a certificate that "does not
verify" because no handshake works at all).  Each section is handed to ``progress`` as
soon as it is known (the command line prints it then).  Nothing here prints.
"""

from __future__ import annotations

import argparse
import datetime
import functools
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from cryptography import x509

from .._suites import HYBRID_GROUPS
from .._verify import is_ip_address
from ..context import ALL_GROUPS, ALL_SUITES, TLSContext
from ..errors import AlertDescription, CertificateError, TLSError
from ._args import (
    Render,
    add_client_certificate_options,
    add_json_option,
    add_target_arguments,
    formatter,
    positive,
    positive_int,
)
from ._causes import (
    ChainAnalysis,
    analyse_chain,
    head_request,
    http_date,
    legacy_suites_words,
    received_alert,
    refused_suites_offered,
)
from ._common import (
    EXIT_FAILURE,
    EXIT_OK,
    CLIError,
    ErrorInfo,
    client_words,
    error_info,
    server_name,
    version_label,
)
from ._facts import CertificateFacts, certificate_facts, utcnow
from ._probing import (
    CLIENT_CERTIFICATE_REQUIRED,
    DEFAULT_CONCURRENCY,
    Attempt,
    DiagnoseTarget,
    Probe,
    ProbeSection,
    attempt,
    needs_client_certificate,
    probe,
    probe_context,
    run_all,
)
from ._target import parse_target
from .connect import load_client_certificate

__all__ = ["CLIENT_CERTIFICATE_REQUIRED", "CertificateCheck", "DiagnoseReport",
           "DiagnoseTarget", "Findings", "Probe", "ProbeSection", "ResumptionCheck",
           "diagnose"]

VERSIONS = (ssl.TLSVersion.TLSv1_3, ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_1,
            ssl.TLSVersion.TLSv1)
VERIFY_ALPN = ("h2", "http/1.1")
#: A certificate that expires within this many days is a finding.
EXPIRY_WARNING_DAYS = 30


@dataclass(frozen=True)
class CertificateCheck:
    """The handshake with verification on, and the chain as the server sent it."""

    servername: str
    ok: bool
    alpn: str | None
    alpn_offered: tuple[str, ...]
    leaf: CertificateFacts | None
    """The server's certificate, when the handshake succeeded."""
    error: ErrorInfo | None
    chain: tuple[str, ...] = ()
    """The subjects of the certificates the server sent, in the order it sent them."""
    server_time: datetime.datetime | None = None
    """The server's clock (its HTTP ``Date``), looked up when the certificate's dates are
    the problem."""


@dataclass(frozen=True)
class ResumptionCheck:
    """Whether a session from one connection resumes on the next."""

    outcome: Literal["resumed", "not-resumed", "no-ticket", "not-checked"]
    version: str | None


@dataclass(frozen=True)
class Findings:
    problems: tuple[str, ...]
    """What looks wrong, the first cause first; empty when nothing does."""
    codes: tuple[str, ...] = ()
    """A stable code for each problem, in the same order (``client-certificate-required``,
    ``client-certificate-refused``, ``sni-required``, ``no-common-version``, ``no-common-suite``, ``no-common-group``,
    ``obsolete-versions-only``, ``obsolete-version-enabled``, ``no-tls13``,
    ``alpn-mismatch``, ``certificate-*`` / ``hostname-mismatch`` (the verifier's codes),
    ``chain-incomplete``, ``chain-untrusted-root``, ``chain-order``,
    ``certificate-expires-soon``, ``resumption-fails``, ``handshake-fails``)."""
    notes: tuple[str, ...] = ()
    """Worth knowing, not wrong (a server that issues no session tickets...)."""


@dataclass(frozen=True)
class DiagnoseReport:
    target: DiagnoseTarget
    versions: ProbeSection
    suites: ProbeSection
    groups: ProbeSection
    certificate: CertificateCheck
    resumption: ResumptionCheck
    findings: Findings

    @property
    def ok(self) -> bool:
        return not self.findings.problems


@dataclass
class _Found:
    problems: list[tuple[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, code: str, text: str, *, first: bool = False) -> None:
        if first:
            self.problems.insert(0, (code, text))
        else:
            self.problems.append((code, text))

    def has(self, *codes: str) -> bool:
        return any(code in codes for code, _ in self.problems)

    def findings(self) -> Findings:
        """The problems, causes that stop every default client first."""
        ordered = sorted(self.problems, key=lambda p: _RANK.get(p[0], _CERTIFICATE_RANK))
        return Findings(tuple(t for _, t in ordered), tuple(c for c, _ in ordered),
                        tuple(self.notes))


#: The order of findings: first what stops a default client from connecting at all, in
#: the order one would fix it; then what is wrong with the certificate; then the rest
#: (codes not listed here: certificate problems, after these).
_RANK = {code: rank for rank, codes in enumerate((
    ("client-certificate-required", "client-certificate-refused"), ("sni-required",),
    ("no-common-version", "obsolete-versions-only", "no-common-suite"),
    ("no-common-group",), ("handshake-fails",), ("alpn-mismatch",),
)) for code in codes}
_CERTIFICATE_RANK = 6
_RANK.update(dict.fromkeys(("obsolete-version-enabled", "no-tls13", "chain-order",
                            "certificate-expires-soon", "resumption-fails"), 7))

#: Findings after which handshakes fail for a reason other than the certificate: a
#: verification that fails too is their consequence, not another cause.
_BLOCKING = ("sni-required", "no-common-version", "no-common-suite", "obsolete-versions-only")


def _sni_problem(target: DiagnoseTarget, err: BaseException | None,
                 nothing_accepted: bool) -> str | None:
    alert = received_alert(err)
    no_sni = is_ip_address(target.servername)
    if alert == AlertDescription.unrecognized_name:
        if no_sni:
            return (f"the server requires SNI: it refused a handshake without a server name "
                    f"(alert unrecognized_name; {target.servername} is an IP address, so none "
                    "is sent): pass --servername NAME with the host name clients use")
        return (f"the server does not serve the name {target.servername!r} (alert "
                "unrecognized_name): check the name, or the server's virtual hosts; "
                "--servername NAME sends another")
    if no_sni and nothing_accepted:
        return (f"no handshake succeeded without a server name ({target.servername} is an IP "
                "address, so no SNI is sent): servers with several names often require it; "
                "pass --servername NAME with the host name clients use")
    return None


def _suite_versions(accepted: list[ssl.TLSVersion]) -> list[tuple[str, ssl.TLSVersion, bool]]:
    """(suite, the version to probe it at, whether it is AEAD), for the versions accepted."""
    out = []
    for suite in ALL_SUITES:
        version = ssl.TLSVersion.TLSv1_3 if suite.kex is None else ssl.TLSVersion.TLSv1_2
        if not suite.aead and version not in accepted:
            # (a CBC suite is also a TLS 1.1/1.0 suite: probed at the best of those)
            version = next((v for v in accepted if v < ssl.TLSVersion.TLSv1_2), version)
        if version in accepted:
            out.append((suite.name, version, suite.aead))
    return out


def _certificate_words(err: ErrorInfo, chain: ChainAnalysis, now: datetime.datetime,
                       server_time: datetime.datetime | None) -> tuple[str, str]:
    """(code, finding) for a certificate that does not verify."""
    code = err.code or "certificate-invalid"
    if code == "certificate-unknown-ca" and chain.problem:
        return chain.code or code, chain.problem
    text = f"the certificate does not verify: {err.what}"
    if code in ("certificate-expired", "certificate-not-yet-valid"):
        text += f" (this machine's clock: {now:%Y-%m-%d %H:%M:%S} UTC"
        text += (f"; the server's clock: {server_time:%Y-%m-%d %H:%M:%S} UTC)"
                 if server_time is not None else "; the server's clock: not known)")
    if err.hint:
        text += f"; {err.hint}"
    return code, text


def diagnose(target: DiagnoseTarget, *, cafile: str | None = None, timeout: float = 5.0,
             progress: Callable[[object], None] | None = None, cert: str | None = None,
             key: str | None = None, alpn: tuple[str, ...] | None = None,
             concurrency: int = DEFAULT_CONCURRENCY) -> DiagnoseReport:
    """Probe ``target`` (with the client certificate ``cert``/``key`` if given), at most
    ``concurrency`` handshakes at once; raises :class:`CLIError` when nothing answers in
    TLS there at all (refused, silent, reset, another protocol)."""
    def report(section: object) -> None:
        if progress is not None:
            progress(section)

    def context(version: ssl.TLSVersion | None = None, suite: str | None = None,
                group: str | None = None, everything: bool = False) -> TLSContext:
        ctx = probe_context(version, suite, group, everything=everything)
        if cert is not None:
            load_client_certificate(ctx, cert, key)
        return ctx

    mtls = cert is not None
    found = _Found()
    # 1. as a default client would
    base = attempt(target, context(), timeout, with_certificate=mtls)
    exc = base.error
    if base.handshake is None and isinstance(exc, CLIError) and not needs_client_certificate(exc):
        if exc.code == "connection-reset" and is_ip_address(target.servername):
            raise CLIError(exc.what, cause=(exc.cause or "") + "; or it requires a server "
                           "name (SNI), which is not sent to an IP address",
                           hint="pass --servername NAME with the host name clients use; "
                           + (exc.hint or ""), code=exc.code) from None
        raise exc  # nothing listens, or it is silent, or it resets: the first cause
    if base.handshake is None and isinstance(exc, TLSError) and exc.code.startswith("not-tls"):
        raise exc  # (the port speaks another protocol: every probe would say only that)
    if needs_client_certificate(exc):
        # the first cause: the probes below still learn what the server accepts
        found.add("client-certificate-required", "the server requires a client certificate "
                  "(mutual TLS), and none was given: pass --cert FILE --key FILE")
    elif base.handshake is not None and exc is not None:
        info = error_info(exc)
        found.add("client-certificate-refused", "the server refused the client certificate "
                  f"given with --cert: {info.what}" + (f" ({info.hint})" if info.hint else ""))

    # 2. versions, each with every suite and group aiotls has
    def version_probe(v: ssl.TLSVersion) -> Probe:
        return probe(version_label(v), target, context(v, everything=True), timeout,
                     "obsolete and insecure (RFC 8996): disable it on the server"
                     if v < ssl.TLSVersion.TLSv1_2 else None, mtls)

    versions = ProbeSection("versions", tuple(run_all(
        [functools.partial(version_probe, v) for v in VERSIONS], concurrency)))
    report(versions)
    accepted = [v for v in VERSIONS if versions.accepted(version_label(v))]
    sni = _sni_problem(target, exc, not accepted)
    if sni is not None:
        found.add("sni-required", sni)
    elif not accepted:
        legacy = refused_suites_offered(target.host, target.port,
                                        None if is_ip_address(target.servername)
                                        else target.servername, timeout)
        if legacy:
            found.add("no-common-suite", legacy_suites_words(legacy))
        else:
            found.add("no-common-version", "no protocol version in common: the server refused "
                      "TLS 1.3 down to TLS 1.0 with every suite and group aiotls has (it may "
                      "speak only SSL 3.0)")
    elif accepted[0] < ssl.TLSVersion.TLSv1_2:
        found.add("obsolete-versions-only", "the server offers only obsolete versions ("
                  + ", ".join(version_label(v) for v in accepted) + "; RFC 8996): current "
                  "clients, aiotls's included, refuse to connect; enable TLS 1.2 and 1.3 on "
                  "the server")
    else:
        for v in accepted:
            if v < ssl.TLSVersion.TLSv1_2:
                found.add("obsolete-version-enabled", f"{version_label(v)} is enabled")
        if ssl.TLSVersion.TLSv1_3 not in accepted:
            found.add("no-tls13", "TLS 1.3 is not offered")

    # 3. suites and groups, the certificate, resumption: all at once, within the bound
    suite_plan = _suite_versions(accepted)
    group_plan = [g for g in ALL_GROUPS
                  if accepted and (accepted[0] >= ssl.TLSVersion.TLSv1_2
                                   or not g.startswith("ffdhe"))
                  # (not probed yet: with a client certificate, that probe stalled the
                  # one-connection-at-a-time server of tests/test_cli_mtls.py; not understood)
                  and g not in HYBRID_GROUPS]
    verify_ctx = _verify_context(accepted, cafile, alpn or VERIFY_ALPN)
    if cert is not None:
        load_client_certificate(verify_ctx, cert, key)
    def suite_probe(suite: str, v: ssl.TLSVersion, aead: bool) -> Probe:
        label = next(x.openssl_name for x in ALL_SUITES if x.name == suite)
        # (every group: a suite is refused for itself, not for want of a group)
        return probe(label, target, context(v, suite, everything=True), timeout,
                     None if aead else "CBC: prefer AEAD suites", mtls)

    def group_probe(group: str) -> Probe:
        # (every suite: a group is refused for itself, not for want of a suite)
        return probe(group, target, context(accepted[0], group=group, everything=True),
                     timeout, None, mtls)

    calls: list[Callable[[], object]] = [functools.partial(suite_probe, *p) for p in suite_plan]
    calls += [functools.partial(group_probe, g) for g in group_plan]
    calls.append(functools.partial(attempt, target, verify_ctx, timeout, with_certificate=mtls))
    can_resume = bool(accepted) and not found.has(
        "client-certificate-required", "client-certificate-refused", "sni-required")
    if can_resume:
        calls.append(functools.partial(_resumption, target, probe_context(
            accepted[0], everything=True), timeout, mtls, cert, key))
    results = run_all(calls, concurrency)
    suites = ProbeSection("suites", tuple(r for r in results[:len(suite_plan)]
                                          if isinstance(r, Probe)))
    report(suites)
    groups = ProbeSection("groups", tuple(
        r for r in results[len(suite_plan):len(suite_plan) + len(group_plan)]
        if isinstance(r, Probe)))
    report(groups)
    checked = results[len(suite_plan) + len(group_plan)]
    assert isinstance(checked, Attempt)
    resumption = results[-1] if can_resume else ResumptionCheck("not-checked", None)
    assert isinstance(resumption, ResumptionCheck)

    if accepted and not found.has(*_BLOCKING):
        _defaults_problems(found, suites, groups, exc, base)

    certificate = _check_certificate(target, verify_ctx, checked, timeout, mtls, found,
                                     alpn or VERIFY_ALPN, alpn is not None)
    report(certificate)
    report(resumption)
    if resumption.outcome == "not-resumed":
        found.add("resumption-fails", "session resumption fails: the server issued a session "
                  "ticket and did not accept it on the next connection, so every connection "
                  "pays a full handshake; behind a load balancer, share the ticket keys "
                  "between the servers")
    elif resumption.outcome == "no-ticket":
        found.notes.append("the server issues no session tickets: every connection pays a "
                           "full handshake (fine if intended)")
    return DiagnoseReport(target, versions, suites, groups, certificate, resumption,
                          found.findings())


def _verify_context(accepted: list[ssl.TLSVersion], cafile: str | None,
                    alpn: tuple[str, ...]) -> TLSContext:
    """Verification on, offering every suite and group (the certificate is checked even
    when the defaults find nothing in common: that is reported on its own)."""
    ctx = TLSContext(ssl.PROTOCOL_TLS_CLIENT)
    if accepted and accepted[0] < ctx.minimum_version:
        ctx.minimum_version = accepted[0]  # (the certificate, at the version it has)
    ctx.set_ciphers(":".join(s.name for s in ALL_SUITES))
    ctx.set_groups(list(ALL_GROUPS))
    if cafile:
        ctx.load_verify_locations(cafile=cafile)
    else:
        ctx.load_default_certs()
    ctx.set_alpn_protocols(list(alpn))
    return ctx


def _defaults_problems(found: _Found, suites: ProbeSection, groups: ProbeSection,
                       exc: BaseException | None, base: Attempt) -> None:
    """Why a default client fails when the server accepts some version: no default suite,
    no default group, or another reason its error names."""
    defaults = TLSContext(ssl.PROTOCOL_TLS_CLIENT)
    default_suites = {c["name"] for c in defaults.get_ciphers()}
    taken = suites.accepted_labels()
    if suites.probes and not default_suites.intersection(taken):
        found.add("no-common-suite", "no cipher suite in common with current clients' "
                  "defaults: the server accepts only " + ", ".join(taken or ("none",))
                  + (" (CBC suites, which default configurations no longer offer)"
                     if taken else "") + "; enable ECDHE with AES-GCM or ChaCha20-Poly1305 "
                  "on the server")
        return
    default_groups = set(defaults.get_groups())
    taken_groups = groups.accepted_labels()
    if groups.probes and taken_groups and not default_groups.intersection(taken_groups):
        found.add("no-common-group", "no key-exchange group in common with current clients' "
                  f"defaults ({', '.join(sorted(default_groups))}): the server accepts only "
                  + ", ".join(taken_groups) + "; enable X25519 and P-256 on the server")
        return
    if base.handshake is None and exc is not None and not needs_client_certificate(exc):
        info = error_info(client_words(exc))
        found.add("handshake-fails", f"a default client's handshake fails: {info.what}"
                  + (f" ({info.cause})" if info.cause else ""))


def _check_certificate(target: DiagnoseTarget, ctx: TLSContext, checked: Attempt,
                       timeout: float, mtls: bool, found: _Found,
                       offered: tuple[str, ...], alpn_asked: bool) -> CertificateCheck:
    err = checked.error
    if received_alert(err) == AlertDescription.no_application_protocol:
        found.add("alpn-mismatch", "ALPN mismatch: the server supports none of the protocols "
                  f"offered ({', '.join(offered)}) and refuses the handshake (alert "
                  "no_application_protocol); offer one it speaks (--alpn PROTO)")
        ctx.set_alpn_protocols([])
        checked = attempt(target, ctx, timeout, with_certificate=mtls)
        err = checked.error
        offered = ()  # (the certificate was checked without ALPN)
    now = utcnow()
    hs = checked.handshake
    if hs is not None:
        err = None  # (verified in the handshake: a refused client certificate comes after)
    if hs is None or err is not None:
        # the chain, as sent, from a handshake that does not verify
        chain_source = attempt(target, _unverified(ctx), timeout,
                               with_certificate=mtls).handshake
        sent = chain_source.peer_certificates if chain_source is not None else ()
    else:
        sent = hs.peer_certificates
    anchors = [x509.load_der_x509_certificate(d) for d in ctx.get_ca_certs(binary_form=True)]
    chain = analyse_chain(sent, anchors, min(timeout, 5.0))
    subjects = tuple(certificate_facts(x509.load_der_x509_certificate(d), now).subject
                     for d in sent)
    if err is not None:
        info = error_info(client_words(err))
        server_time = None
        if info.code in ("certificate-expired", "certificate-not-yet-valid"):
            server_time = _server_clock(target, ctx, timeout, mtls)
        if isinstance(err, CertificateError) or info.code in ("hostname-mismatch",
                                                               "ip-address-mismatch"):
            code, text = _certificate_words(info, chain, now, server_time)
            found.add(code, text)
        elif not found.has(*_BLOCKING, "no-common-group", "handshake-fails", "alpn-mismatch"):
            found.add("handshake-fails", f"the handshake with verification on fails: "
                      f"{info.what}")
        return CertificateCheck(target.servername, False, None, offered, None, info,
                                subjects, server_time)
    assert hs is not None
    leaf_cert = x509.load_der_x509_certificate(hs.peer_certificates[0]) \
        if hs.peer_certificates else None
    leaf = certificate_facts(leaf_cert, now) if leaf_cert is not None else None
    if chain.code == "chain-order" and chain.problem is not None:
        found.add(chain.code, chain.problem)  # (aiotls verified it; strict clients do not)
    if leaf_cert is not None:
        left = leaf_cert.not_valid_after_utc - now
        if left < datetime.timedelta(days=EXPIRY_WARNING_DAYS):
            found.add("certificate-expires-soon", f"the certificate expires in "
                      f"{max(0, left.days)} days "
                      f"({leaf_cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC): renew it now")
    if alpn_asked and hs.alpn_protocol is None:
        found.add("alpn-mismatch", "ALPN mismatch: the server selected none of the protocols "
                  f"offered ({', '.join(offered)}): it ignores ALPN, or speaks none of them")
    return CertificateCheck(target.servername, True, hs.alpn_protocol, offered, leaf, None,
                            subjects)


def _unverified(ctx: TLSContext) -> TLSContext:
    """A probe context (every suite and group, no verification) down to ``ctx``'s
    lowest version."""
    probe_ctx = probe_context(everything=True)
    probe_ctx.minimum_version = ctx.minimum_version
    return probe_ctx


def _server_clock(target: DiagnoseTarget, ctx: TLSContext, timeout: float,
                  mtls: bool) -> datetime.datetime | None:
    """The server's clock, from an HTTP response's ``Date`` (HTTPS servers only)."""
    probe_ctx = _unverified(ctx)
    probe_ctx.set_alpn_protocols(["http/1.1"])
    got = attempt(target, probe_ctx, timeout, with_certificate=mtls,
                  send=head_request(target.servername))
    return http_date(got.reply)


def _resumption(target: DiagnoseTarget, ctx: TLSContext, timeout: float, mtls: bool,
                cert: str | None, key: str | None) -> ResumptionCheck:
    if cert is not None:
        load_client_certificate(ctx, cert, key)
    first = attempt(target, ctx, timeout, with_certificate=mtls, want_session=True)
    if first.handshake is None or first.error is not None:
        return ResumptionCheck("not-checked", None)
    if first.session is None:
        return ResumptionCheck("no-ticket", first.handshake.version)
    second = attempt(target, ctx, timeout, with_certificate=mtls, session=first.session)
    if second.handshake is None:
        return ResumptionCheck("not-checked", first.handshake.version)
    return ResumptionCheck("resumed" if second.handshake.session_reused else "not-resumed",
                           second.handshake.version)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "diagnose", formatter_class=formatter,
        help="find out why TLS to a server fails, or what is wrong with it",
        description="Connect to HOST PORT as a default client would, then many times more "
        "(at most --concurrency at once): once per protocol version (TLS 1.3 down to TLS "
        "1.0), per cipher suite and per key-exchange group, without authenticating, to learn "
        "what the server accepts; once with verification, to check its certificate and the "
        "chain it sends; and twice to see whether sessions resume. The findings name the "
        "first cause first and leave out what only follows from it (exit status 1 when "
        "there are any).",
    )
    add_target_arguments(parser)
    parser.add_argument("--servername", metavar="NAME",
                        help="name to send as SNI and to verify (default: HOST)")
    parser.add_argument("--cafile", metavar="FILE",
                        help="trust the CA certificates in FILE (default: the system's CAs)")
    add_client_certificate_options(parser)
    parser.add_argument("--alpn", metavar="PROTO", action="append",
                        help="offer this ALPN protocol when checking the certificate (repeat "
                        "for several; default: h2 and http/1.1); a server that selects none "
                        "of those given is a finding")
    parser.add_argument("--timeout", type=positive, default=5.0, metavar="SECONDS",
                        help="per-attempt timeout (default: 5)")
    parser.add_argument("--concurrency", type=positive_int, default=DEFAULT_CONCURRENCY,
                        metavar="N", help="run at most N handshakes at once (default: "
                        f"{DEFAULT_CONCURRENCY})")
    add_json_option(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace, render: Render) -> int:
    host, port = parse_target(args.host, args.port)
    target = DiagnoseTarget(host, port, server_name(args.servername or host))
    render(target)
    report = diagnose(target, cafile=args.cafile, timeout=args.timeout, progress=render,
                      cert=args.cert, key=args.key,
                      alpn=tuple(args.alpn) if args.alpn else None,
                      concurrency=args.concurrency)
    render(report.findings)
    return EXIT_OK if report.ok else EXIT_FAILURE
