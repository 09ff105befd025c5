"""``certs``: inspect certificate files, check a host name, verify a chain.

:func:`inspect` reads PEM/DER files into :class:`CertsReport`: the facts of every
certificate, whether each is issued by the next one in its file, and -- on request -- what
aiotls's verifier (:mod:`aiotls._verify`, the one the handshake uses) says about a host
name and about the whole chain against a CA file.  Nothing here prints.
"""

from __future__ import annotations

import argparse
import datetime
from dataclasses import dataclass
from typing import Literal

from cryptography import x509

from .. import _crypto, _verify
from ..errors import CertificateError
from . import certs_create
from ._args import Render, add_json_option, formatter, text
from ._common import EXIT_FAILURE, EXIT_OK, CLIError, ErrorInfo, error_info, load_certificates
from ._facts import CertificateFacts, IssuerVerdict, certificate_facts, issued_by, name_text, utcnow

#: The verifier's codes for "the name is not in the certificate".
MISMATCH_CODES = frozenset({"hostname-mismatch", "ip-address-mismatch"})


@dataclass(frozen=True)
class CertificateEntry:
    """One certificate of a file, numbered across all files given (from 1)."""

    number: int
    facts: CertificateFacts
    issued_by_next: IssuerVerdict | None
    """Whether the next certificate in the same file issued this one (``None`` for the
    last one in its file)."""
    issued_by_next_note: str
    """Why the signature could not be checked (``signature-not-checked``)."""
    next_subject: str | None
    """The next certificate's subject, if there is one in the file."""
    issuer_outside: Literal["self-signed", "not-in-file"] | None
    """For the last certificate of a file: it signed itself, or its issuer is elsewhere
    (only said for files with several certificates)."""


@dataclass(frozen=True)
class CertificateFile:
    path: str
    certificates: tuple[CertificateEntry, ...]

    @property
    def is_chain(self) -> bool:
        """Each certificate is issued by the next (leaf-first order)."""
        return all(c.issued_by_next in ("yes", "signature-not-checked")
                   for c in self.certificates[:-1])


@dataclass(frozen=True)
class HostnameCheck:
    """What the verifier says about the leaf and a host name, chain and dates aside."""

    hostname: str
    leaf_subject: str
    names: tuple[str, ...]
    """The DNS names and IP addresses the leaf lists."""
    accepted: bool
    error: ErrorInfo | None
    """Why not: a ``hostname-mismatch``/``ip-address-mismatch``, or another objection of
    the verifier to the leaf (its extended key usage, for example)."""

    @property
    def mismatch(self) -> bool:
        return self.error is not None and self.error.code in MISMATCH_CODES


@dataclass(frozen=True)
class ChainVerification:
    """The chain verified as a TLS server chain against the CA file."""

    cafile: str
    anchors: int
    """How many certificates the CA file holds."""
    hostname: str | None
    ok: bool
    path: tuple[str, ...]
    """The verified path's subjects, leaf to trust anchor."""
    error: ErrorInfo | None


@dataclass(frozen=True)
class CertsReport:
    files: tuple[CertificateFile, ...]
    hostname: HostnameCheck | None
    verification: ChainVerification | None

    @property
    def ok(self) -> bool:
        return not ((self.hostname is not None and not self.hostname.accepted)
                    or (self.verification is not None and not self.verification.ok))


def _entries(certs: list[x509.Certificate], first: int,
             now: datetime.datetime) -> tuple[CertificateEntry, ...]:
    entries = []
    for i, cert in enumerate(certs):
        verdict: IssuerVerdict | None = None
        note = ""
        outside: Literal["self-signed", "not-in-file"] | None = None
        following = certs[i + 1] if i + 1 < len(certs) else None
        if following is not None:
            verdict, note = issued_by(cert, following)
        elif _crypto.certificate_is_self_issued_and_signed(cert):
            outside = "self-signed"
        elif len(certs) > 1:
            outside = "not-in-file"
        entries.append(CertificateEntry(
            number=first + i, facts=certificate_facts(cert, now), issued_by_next=verdict,
            issued_by_next_note=note,
            next_subject=name_text(following.subject) if following is not None else None,
            issuer_outside=outside))
    return tuple(entries)


def check_hostname(leaf: x509.Certificate, hostname: str) -> HostnameCheck:
    """Ask the handshake's verifier whether ``leaf`` is good for ``hostname``.

    The chain and the dates are set aside -- the leaf is its own trust anchor and the
    check happens at its first valid moment -- so the answer is about the name (and the
    leaf's fitness as a TLS server certificate), exactly as a handshake would judge it.
    """
    trust = _verify.TrustStore()
    trust.add([leaf])
    error = None
    try:
        _verify.verify_chain([_crypto.der_bytes(leaf)], trust=trust, role="server",
                             hostname=hostname, now=leaf.not_valid_before_utc)
    except CertificateError as err:
        error = error_info(err)
    return HostnameCheck(hostname=hostname, leaf_subject=name_text(leaf.subject),
                         names=tuple(_verify.certificate_names(leaf)), accepted=error is None,
                         error=error)


def verify_against(chain: list[x509.Certificate], cafile: str, hostname: str | None,
                   now: datetime.datetime) -> ChainVerification:
    """Verify ``chain`` (leaf first) as a TLS server chain against the CAs in ``cafile``."""
    anchors = load_certificates(cafile)
    trust = _verify.TrustStore()
    trust.add(anchors)
    try:
        path = _verify.verify_chain([_crypto.der_bytes(c) for c in chain], trust=trust,
                                    role="server", hostname=hostname, now=now)
    except CertificateError as err:
        return ChainVerification(cafile, len(anchors), hostname, False, (), error_info(err))
    return ChainVerification(cafile, len(anchors), hostname, True,
                             tuple(name_text(c.subject) for c in path), None)


def inspect(paths: list[str], *, hostname: str | None = None, cafile: str | None = None,
            now: datetime.datetime | None = None) -> CertsReport:
    """Read and examine the certificate files; the first certificate is the leaf, the
    others its chain in the order given.  Raises :class:`CLIError` for unreadable files."""
    now = now or utcnow()
    files: list[CertificateFile] = []
    chain: list[x509.Certificate] = []
    for path in paths:
        certs = load_certificates(path)
        files.append(CertificateFile(path, _entries(certs, len(chain) + 1, now)))
        chain.extend(certs)
    return CertsReport(
        files=tuple(files),
        hostname=check_hostname(chain[0], hostname) if hostname else None,
        verification=verify_against(chain, cafile, hostname or None, now) if cafile else None,
    )


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    certs = sub.add_parser(
        "certs", formatter_class=formatter,
        help="inspect certificates; check a host name; verify a chain",
        description=text("""
            Print every certificate in the given PEM (or DER) files: names, validity
            (and whether it is expired right now), subjectAltName, key, signature
            algorithm, usages, SHA-256 fingerprint, and whether each certificate in a
            file is issued by the next one.

            For --hostname and --cafile, the first certificate given is the leaf and
            the others are its chain, in the order given.  Both are judged by the
            verifier the handshake uses.
        """),
        epilog="'python -m aiotls certs create NAME...' writes a development CA and "
        "certificates instead (--dir DIR, --client NAME, --key-type, --days; see "
        "'certs create --help').  exit status: 1 if --hostname does not match or --cafile "
        "verification fails.",
    )
    certs.add_argument("files", nargs="+", metavar="FILE", help="certificate file(s)")
    certs.add_argument("--hostname", metavar="NAME",
                       help="check that the leaf certificate is valid for this host name or IP")
    certs.add_argument("--cafile", metavar="CA",
                       help="verify the chain as a TLS server chain against the CA "
                       "certificates in this file (and the --hostname, if given)")
    add_json_option(certs)
    certs.set_defaults(run=run)


def run(args: argparse.Namespace, render: Render) -> int:
    report = inspect(args.files, hostname=args.hostname, cafile=args.cafile)
    render(report)
    return EXIT_OK if report.ok else EXIT_FAILURE


def run_create(argv: list[str], render: Render) -> int:
    """``certs create ARGS`` (routed here by :func:`aiotls.cli.main`: its options are its
    own); :class:`UsageError` for wrong arguments."""
    options = certs_create.parse(argv)
    try:
        report = certs_create.create(tuple(options.names), directory=options.dir,
                                     client=options.client, key_type=options.key_type,
                                     days=options.days)
    except OSError as exc:
        raise CLIError(f"cannot write the certificates into {options.dir!r}: "
                       f"{exc.strerror or exc}",
                       cause="the directory is not writable, or a file in it is not readable",
                       hint="choose another --dir", code="file-unwritable") from None
    render(report)
    return EXIT_OK
