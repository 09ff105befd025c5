"""The one renderer: every result object of every command, as text.

Commands compute frozen dataclasses (plain data) and hand them to :class:`TextRenderer`;
this module is the only place that words and lays them out.  Errors are printed as
``error:`` / ``likely cause:`` / ``fix:`` lines on stderr.
"""

from __future__ import annotations

import datetime
import threading
from collections.abc import Callable
from typing import Any, TextIO

from . import certs, certs_create, connect, demo, diagnose, serve
from ._common import ErrorInfo, error_info, version_label
from ._facts import CertificateFacts, HandshakeFacts


def error_lines(error: ErrorInfo) -> list[str]:
    """``error:`` / ``likely cause:`` / ``fix:`` lines."""
    lines = [f"error: {error.what}"]
    if error.cause:
        lines.append(f"likely cause: {error.cause}")
    if error.hint:
        lines.append(f"fix: {error.hint}")
    return lines


def human_delta(delta: datetime.timedelta) -> str:
    secs = abs(delta.total_seconds())
    if secs < 120:
        return f"{int(secs)} seconds"
    if secs < 2 * 3600:
        return f"{int(secs // 60)} minutes"
    if secs < 2 * 86400:
        return f"{int(secs // 3600)} hours"
    return f"{int(secs // 86400)} days"


def validity_text(validity: str, not_before: datetime.datetime, not_after: datetime.datetime,
                  now: datetime.datetime) -> str:
    if validity == "not-yet-valid":
        return f"NOT YET VALID: starts in {human_delta(not_before - now)}"
    if validity == "expired":
        return f"EXPIRED {human_delta(now - not_after)} ago"
    return f"valid now, expires in {human_delta(not_after - now)}"


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def _time(dt: datetime.datetime) -> str:
    return dt.strftime("%Y-%m-%d %H:%M:%S UTC")


def _critical(critical: bool) -> str:
    return " (critical)" if critical else ""


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'s' if count != 1 else ''}"


def _san_text(names: tuple[str, ...] | None) -> str:
    if names is None:
        return "none (no subjectAltName extension: no host name can match it)"
    return ", ".join(names) or "(empty subjectAltName)"


def _basic_constraints_text(facts: CertificateFacts) -> str:
    if facts.is_ca is None:
        return "not present (not a CA)"
    critical = _critical(facts.basic_constraints_critical)
    if not facts.is_ca:
        return "CA: no" + critical
    depth = "unlimited" if facts.path_length is None else str(facts.path_length)
    return f"CA: yes, path length {depth}" + critical


class TextRenderer:
    """Prints results to ``out`` (errors to ``err``); safe to call from several threads."""

    def __init__(self, out: TextIO, err: TextIO) -> None:
        self.out = out
        self.err = err
        self._lock = threading.Lock()
        self._handlers: dict[type, Callable[[Any], None]] = {
            demo.DemoReport: self._demo,
            certs.CertsReport: self._certs,
            certs_create.CreateReport: self._created,
            connect.ConnectTarget: self._connect_target,
            connect.ConnectReport: self._connect,
            connect.HandshakeTrace: self._trace,
            serve.Listening: self._serve_event, serve.ClientConnected: self._serve_event,
            serve.ClientHandshake: self._serve_event, serve.ClientCloseNotify: self._serve_event,
            serve.ClientClosed: self._serve_event, serve.ClientFailed: self._serve_event,
            serve.ClientIdle: self._serve_event,
            serve.TraceLine: self._serve_event, serve.ServerError: self._serve_event,
            serve.Stopped: self._serve_event,
            diagnose.DiagnoseTarget: self._diagnose_target,
            diagnose.ProbeSection: self._probes,
            diagnose.CertificateCheck: self._certificate_check,
            diagnose.ResumptionCheck: self._resumption_check,
            diagnose.Findings: self._findings,
        }

    def __call__(self, result: object) -> None:
        """Print ``result`` (any command's result object)."""
        handler = self._handlers.get(type(result))
        if handler is None:
            raise TypeError(f"no text form for {type(result).__name__}")
        with self._lock:
            handler(result)
            self.out.flush()

    def error(self, err: BaseException | ErrorInfo) -> None:
        """Print an error as ``error:`` / ``likely cause:`` / ``fix:`` lines on stderr."""
        info = err if isinstance(err, ErrorInfo) else error_info(err)
        with self._lock:
            self.out.flush()
            for line in error_lines(info):
                print(line, file=self.err)

    # --- pieces --------------------------------------------------------------------------

    def _line(self, text: str = "") -> None:
        print(text, file=self.out)

    def _row(self, label: str, value: str, indent: int = 2) -> None:
        print(f"{' ' * indent}{label:<16} {value}", file=self.out)

    def _certificate(self, facts: CertificateFacts, *, full: bool = True,
                     indent: int = 2) -> None:
        row = self._row
        row("subject", facts.subject, indent)
        row("issuer", facts.issuer, indent)
        if full:
            row("serial", facts.serial, indent)
        row("valid from", _time(facts.not_before), indent)
        row("valid until", _time(facts.not_after), indent)
        row("status", validity_text(facts.validity, facts.not_before, facts.not_after,
                                    facts.checked_at), indent)
        row("names (SAN)", _san_text(facts.names), indent)
        row("public key", facts.public_key, indent)
        if full:
            row("signature", facts.signature, indent)
            if facts.key_usage is not None:
                row("key usage", (", ".join(facts.key_usage) or "(none)")
                    + _critical(facts.key_usage_critical), indent)
            if facts.extended_usage is None:
                row("extended usage", "not present (any use allowed)", indent)
            else:
                row("extended usage", (", ".join(facts.extended_usage) or "(empty)")
                    + _critical(facts.extended_usage_critical), indent)
            row("basic constr.", _basic_constraints_text(facts), indent)
        row("SHA-256", facts.sha256, indent)

    def _handshake(self, hs: HandshakeFacts) -> None:
        self._row("version", hs.version)
        self._row("cipher suite", hs.cipher)
        self._row("key exchange", hs.group or "unknown")

    # --- demo ----------------------------------------------------------------------------

    def _demo(self, r: demo.DemoReport) -> None:
        line, row, s = self._line, self._row, r.setup
        line("aiotls demo: a TLS server and a TLS client talking over loopback, in one process.")
        line()
        line("Setup")
        row("PKI", f"throwaway CA ({s.ca_key}) and server certificate ({s.server_key}), made "
            f"in {_ms(s.pki_seconds)} in {s.directory} (deleted afterwards)")
        row("server", f"listening on 127.0.0.1:{s.port}; certificate for localhost and "
            f"127.0.0.1; accepts ALPN {', '.join(s.server_alpn)}")
        row("client", "connects as 'localhost', verification ON (trusts only the demo CA, "
            f"checks the host name); offers ALPN {', '.join(s.client_alpn)}")
        if s.version is not None:
            row("versions", f"both sides forced to {version_label(s.version)}")
        line()
        line(f"Handshake (TCP connect {_ms(r.tcp_seconds)}, TLS handshake "
             f"{_ms(r.handshake_seconds)}, {r.bytes_sent} bytes sent / {r.bytes_received} "
             "received)")
        self._handshake(r.handshake)
        row("ALPN", f"{r.handshake.alpn or 'none'} (client offered {', '.join(s.client_alpn)}; "
            f"server accepts {', '.join(s.server_alpn)})")
        row("SNI", r.handshake.server_name or "none")
        row("resumed", "yes" if r.handshake.resumed else "no (full handshake)")
        row("verification", f"OK: chain leads to {r.ca_subject}; 'localhost' matches the "
            "certificate's names")
        line()
        line("Server certificate")
        self._certificate(r.server_certificate, full=False)
        line()
        line("Conversation (the server echoes in upper case)")
        for sent, echoed in r.conversation:
            line(f"  client -> server  {sent!r}")
            line(f"  server -> client  {echoed!r}")
        line(f"  ({len(r.conversation)} round trips in {_ms(r.conversation_seconds)})")
        line()
        line("Close")
        row("client", "sent close_notify")
        row("server", "received close_notify" if r.server_received_close_notify
            else "did NOT receive close_notify")
        row("server", "answered with its own close_notify and closed cleanly"
            if r.server_closed_cleanly else "did not close cleanly")
        row("client", "received the server's close_notify: clean close, nothing truncated"
            if r.client_received_close_notify else "the server closed without close_notify")
        line()
        if r.ok:
            line(f"OK: {len(r.conversation)} messages echoed over {r.handshake.version} with "
                 f"certificate verification, closed cleanly; {r.total_seconds:.2f} s in all.")

    # --- certs ---------------------------------------------------------------------------

    def _created(self, r: certs_create.CreateReport) -> None:
        line, row = self._line, self._row
        line(f"Development certificates in {r.directory} (valid until "
             f"{r.not_after:%Y-%m-%d}; keys unencrypted: for development only)")
        row("CA", r.ca_file + (" (reused: already trusted stays trusted)" if r.ca_reused
                               else " (new: trust this file, e.g. --cafile)"))
        row("server", f"{r.cert_file} + {r.key_file}")
        row("  names", ", ".join(r.names))
        if r.client_name is not None:
            row("client", f"{r.client_cert_file} + {r.client_key_file}")
            row("  name", r.client_name)
        line()
        line("Try them:")
        for command in r.commands:
            line(f"  {command}")

    def _certs(self, r: certs.CertsReport) -> None:
        line, row = self._line, self._row
        for f in r.files:
            line(f"{f.path}: {_plural(len(f.certificates), 'certificate')}")
            for entry in f.certificates:
                line()
                line(f"[{entry.number}] {entry.facts.subject}")
                self._certificate(entry.facts)
                if entry.issued_by_next is not None:
                    row("issued by next", f"[{entry.number + 1}]: {self._issuer_text(entry)}")
                elif entry.issuer_outside == "self-signed":
                    row("issued by", "itself (self-signed: a root, or a stand-alone cert)")
                elif entry.issuer_outside == "not-in-file":
                    row("issued by", f"{entry.facts.issuer} (not in this file)")
            if len(f.certificates) > 1:
                verdict = ("each certificate is issued by the next" if f.is_chain
                           else "NOT a chain in leaf-first order (see 'issued by next' above)")
                line(f"\n[{f.certificates[0].number}]..[{f.certificates[-1].number}]: {verdict}")
            line()
        if r.hostname is not None:
            self._hostname(r.hostname)
        if r.verification is not None:
            v = r.verification
            label = f"{v.cafile} ({_plural(v.anchors, 'trusted certificate')})"
            if v.ok:
                checked = f", host name {v.hostname!r}" if v.hostname else ""
                line(f"verification against {label}: OK (chain, validity, usage{checked})")
                row("path", " -> ".join(v.path))
            else:
                line(f"verification against {label}: FAILED")
                if v.error is not None:
                    self._error_lines(v.error)

    @staticmethod
    def _issuer_text(entry: certs.CertificateEntry) -> str:
        verdict = entry.issued_by_next
        if verdict == "name-mismatch":
            return (f"NO: its issuer {entry.facts.issuer} is not the next certificate's "
                    f"subject {entry.next_subject} (wrong order, or a missing intermediate)")
        if verdict == "bad-signature":
            return "NO: the names match but the signature does not verify with its key"
        if verdict == "signature-not-checked":
            return f"names match (signature not checked: {entry.issued_by_next_note})"
        return "yes (issuer name matches, signature verifies)"

    def _hostname(self, h: certs.HostnameCheck) -> None:
        if h.accepted:
            names = ", ".join(h.names)
            self._line(f"host name {h.hostname!r}: matches the certificate (its names: "
                       f"{names}; checked as a handshake would)")
            return
        self._line(f"host name {h.hostname!r}: "
                   + ("does NOT match" if h.mismatch else "NOT accepted by the verifier"))
        if h.error is not None:
            self._error_lines(h.error)

    def _error_lines(self, error: ErrorInfo) -> None:
        self.out.flush()
        for text in error_lines(error):
            print(text, file=self.err)

    # --- connect -------------------------------------------------------------------------

    def _connect_target(self, t: connect.ConnectTarget) -> None:
        self._line(f"Connecting to {t.host}:{t.port} (server name {t.servername!r}, trusting "
                   f"{t.trust})")

    def _trace(self, t: connect.HandshakeTrace) -> None:
        self._line("Handshake trace (--trace)")
        for text in t.lines:
            self._line(f"  {text}")
        self._line()

    def _connect(self, r: connect.ConnectReport) -> None:
        line, row = self._line, self._row
        line(f"Handshake OK (TCP connect {_ms(r.tcp_seconds)}, TLS handshake "
             f"{_ms(r.handshake_seconds)})")
        self._handshake(r.handshake)
        offered = f" (offered {', '.join(r.alpn_offered)})" if r.alpn_offered \
            else " (none offered)"
        row("ALPN", (r.handshake.alpn or "none") + offered)
        row("SNI", r.target.servername if r.sni_sent else "not sent (IP address)")
        row("resumed", "yes" if r.handshake.resumed else "no (full handshake)")
        if r.verified:
            row("verification", f"OK: chain trusted, {r.target.servername!r} matches the "
                "certificate")
        else:
            row("verification", "DISABLED (--insecure): the server was NOT authenticated; "
                "anyone on the path could impersonate it")
        request = r.client_certificate
        if request is not None:
            row("client cert", "sent (--cert) and accepted" if request.sent else
                "asked for, none sent: the server went on without one (optional)")
            for name in request.ca_names:
                row("  accepts", name)
        line()
        line(f"Server certificate chain ({_plural(len(r.chain), 'certificate')} sent)")
        for i, facts in enumerate(r.chain):
            line(f"  [{i}] {facts.subject}")
            self._certificate(facts, full=False, indent=6)
        if r.exchange is not None:
            line()
            line(f"sent      {r.exchange.sent!r}")
            if r.exchange.reply is not None:
                line(f"received  {r.exchange.reply!r}")
            elif r.exchange.no_reply is not None:
                line(f"no reply: {r.exchange.no_reply.what}")
        line()
        if r.close_error is not None:
            line(f"Close: close_notify sent; the server's did not arrive "
                 f"({r.close_error.what}). That is harmless once we are done.")
        elif r.clean_close:
            line("Close: close_notify exchanged both ways (clean close).")
        else:
            line("Close: close_notify sent; the server closed without its own (harmless for "
                 "a client that is done).")

    # --- serve ---------------------------------------------------------------------------

    def _serve_event(self, event: object) -> None:
        line = self._line
        if isinstance(event, serve.Listening):
            self._listening(event)
        elif isinstance(event, serve.ClientConnected):
            line(f"[{event.client}] connected")
        elif isinstance(event, serve.ClientHandshake):
            sni = event.server_name or "none"
            if event.ignored_server_name is not None:
                sni += f" (ignored the IP address {event.ignored_server_name} sent as SNI)"
            cert = f" client-cert={event.client_certificate}" if event.client_certificate else ""
            line(f"[{event.client}] handshake OK: {event.version} {event.cipher} "
                 f"{event.group or '?'} ALPN={event.alpn or 'none'} SNI={sni}{cert}")
        elif isinstance(event, serve.ClientCloseNotify):
            line(f"[{event.client}] close_notify received and answered; echoed {event.echoed} "
                 "bytes")
        elif isinstance(event, serve.ClientClosed):
            line(f"[{event.client}] closed cleanly"
                 + (" (EOF without close_notify, tolerated)" if event.truncated else ""))
        elif isinstance(event, serve.ClientIdle):
            line(f"[{event.client}] idle for {event.seconds:g} s (--timeout): closed; echoed "
                 f"{event.echoed} bytes")
        elif isinstance(event, serve.ClientFailed):
            first, *rest = error_lines(event.error)
            line("\n".join([f"[{event.client}] {first}",
                            *(f"[{event.client}]   {text}" for text in rest)]))
        elif isinstance(event, serve.TraceLine):
            line(f"trace: {event.text}")
        elif isinstance(event, serve.ServerError):
            line(f"server error: {event.detail}")
        elif isinstance(event, serve.Stopped):
            line("stopped")

    def _listening(self, event: serve.Listening) -> None:
        line = self._line
        setup = event.setup
        dev = setup.dev if setup is not None else None
        if dev is not None:
            line(f"Development certificate for {', '.join(dev.names)} in {dev.directory} "
                 "(made because no --cert was given; for development only)")
            line(f"  CA               {dev.ca_file}"
                 + (" (reused)" if dev.ca_reused else " (new: clients must trust it)"))
            if dev.client_cert_file is not None:
                line(f"  client cert      {dev.client_cert_file} + {dev.client_key_file}")
        line(f"aiotls echo server listening on {event.host}:{event.port} (certificate "
             f"{event.subject}, {event.key}; at most {event.max_connections} connections "
             "at once; Ctrl-C to stop)")
        if setup is not None:
            client = ("not asked for" if setup.client_ca is None else
                      f"required, issued by a CA in {setup.client_ca}"
                      if setup.require_client_cert else
                      f"asked for (optional), verified against {setup.client_ca}")
            line(f"  handshake timeout {setup.handshake_timeout:g} s, idle timeout "
                 f"{setup.idle_timeout:g} s; client certificates: {client}")
            if setup.keylog:
                line(f"  key log          {setup.keylog} (secrets: for debugging only)")
            if setup.trace:
                line("  trace            on: each handshake message is printed")
        if event.connect_command is not None:
            line("Try it:")
            line(f"  {event.connect_command}")

    # --- diagnose ------------------------------------------------------------------------

    def _diagnose_target(self, t: diagnose.DiagnoseTarget) -> None:
        self._line(f"Diagnosing {t.host}:{t.port} (server name {t.servername!r})")

    @staticmethod
    def _probe_text(probe: diagnose.Probe) -> str:
        if probe.outcome == "accepted":
            return "accepted" + (f"  <- {probe.warning}" if probe.warning else "")
        error = probe.error
        reason = (error.alert or error.what) if error is not None else "unknown"
        return f"{probe.outcome} ({reason})"

    def _probes(self, section: diagnose.ProbeSection) -> None:
        title = {"versions": "Protocol versions",
                 "suites": "Cipher suites (aiotls's, one at a time)",
                 "groups": "Key-exchange groups"}[section.kind]
        self._line(f"\n{title}")
        for probe in section.probes:
            if section.kind == "suites":
                self._line(f"  {probe.label:<32} {self._probe_text(probe)}")
            else:
                self._row(probe.label, self._probe_text(probe))

    def _certificate_check(self, c: diagnose.CertificateCheck) -> None:
        self._line("\nCertificate verification")
        if c.ok:
            self._row("result", f"OK: the chain is trusted and matches {c.servername!r}")
            self._row("ALPN", f"{c.alpn or 'none'} (offered {', '.join(c.alpn_offered)})")
            if c.leaf is not None:
                status = validity_text(c.leaf.validity, c.leaf.not_before, c.leaf.not_after,
                                       c.leaf.checked_at)
                self._row("leaf", f"{c.leaf.subject}; {status}")
        elif c.error is not None:
            for text in error_lines(c.error):
                self._line(f"  {text}")
        if c.chain:
            self._row("chain sent", " -> ".join(c.chain))
        if c.server_time is not None:
            self._row("server clock", f"{c.server_time:%Y-%m-%d %H:%M:%S} UTC (HTTP Date)")

    def _resumption_check(self, r: diagnose.ResumptionCheck) -> None:
        text = {"resumed": "OK: a session from one connection resumed on the next",
                "not-resumed": "FAILED: the server issued a session ticket, then did not "
                "accept it",
                "no-ticket": "none: the server issued no session ticket",
                "not-checked": "not checked (no handshake completed)"}[r.outcome]
        self._line("\nSession resumption")
        version = f" ({r.version.replace('TLSv', 'TLS ')})" if r.version else ""
        self._row("result", text + version)

    def _findings(self, f: diagnose.Findings) -> None:
        self._line()
        if f.problems:
            self._line("Findings: " + "; ".join(f.problems) + ".")
        else:
            self._line("Findings: nothing wrong found (TLS 1.3 offered, no obsolete versions, "
                       "certificate verifies).")
        for note in f.notes:
            self._line(f"Note: {note}.")
