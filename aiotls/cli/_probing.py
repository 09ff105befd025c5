"""The handshakes ``diagnose`` makes: one attempt, one capability probe, many at once.

Every attempt is a blocking socket driven by :class:`CLIChannel` with a deadline, so
probes run in a bounded pool of threads (:func:`run_all`); results come back in the order
they were asked for, whatever order they finish in.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Literal, TypeVar

from ..connection import TLSConnection, TLSSession
from ..context import ALL_GROUPS, ALL_SUITES, TLSContext
from ..errors import TLSError
from ..events import HandshakeCompleted
from ._common import CLIChannel, CLIError, ErrorInfo, client_words, error_info, network_error
from .connect import await_verdict, verdict_window

#: The error code of a server that requires a client certificate this client lacks.
CLIENT_CERTIFICATE_REQUIRED = "client-certificate-required"

#: How many handshakes ``diagnose`` runs at once by default.
DEFAULT_CONCURRENCY = 8


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

    def accepted_labels(self) -> tuple[str, ...]:
        return tuple(p.label for p in self.probes if p.outcome == "accepted")


@dataclass
class Attempt:
    """What one connection learned."""

    handshake: HandshakeCompleted | None = None
    error: BaseException | None = None
    session: TLSSession | None = None
    """The session to resume (when asked to wait for tickets)."""
    reply: bytes = b""
    """What the server answered to the request sent (when one was)."""


def attempt(target: DiagnoseTarget, ctx: TLSContext, timeout: float, *,
            with_certificate: bool = False, session: TLSSession | None = None,
            send: bytes = b"", want_session: bool = False) -> Attempt:
    """One handshake, and the server's verdict when it asked for a client certificate;
    then, optionally, wait for session tickets (``want_session``) or send ``send`` and
    read the answer until the server closes or the deadline passes."""
    deadline = time.monotonic() + timeout
    result = Attempt()
    try:
        sock = socket.create_connection((target.host, target.port), timeout=timeout)
    except OSError as exc:
        result.error = network_error(exc, f"connecting to {target.host}:{target.port}")
        return result
    started = time.perf_counter()
    with sock:
        conn = TLSConnection(ctx, server_hostname=target.servername, session=session)
        channel = CLIChannel(sock, conn, peer=f"{target.host}:{target.port}", io_timeout=timeout)
        try:
            result.handshake = channel.handshake(deadline)
        except (TLSError, CLIError, OSError) as exc:
            result.error = exc
            return result
        window = verdict_window(time.perf_counter() - started, timeout)
        try:
            if conn.requested_client_ca_names is not None:
                result.reply = await_verdict(channel, conn, time.monotonic() + window,
                                             with_certificate)
            if want_session:
                # (TLS 1.3 tickets follow the handshake: give them a round trip or two)
                with contextlib.suppress(CLIError):
                    channel.next_event(time.monotonic() + window, "waiting for session tickets")
                session = conn.session
                result.session = session if session is not None and session.has_ticket else None
            if send:
                channel.send(send)
                result.reply += _read_reply(channel, min(deadline, time.monotonic() + 2.0))
        except (TLSError, CLIError, OSError) as exc:
            result.error = exc
            return result
        with contextlib.suppress(TLSError, CLIError, OSError):
            channel.close(time.monotonic() + min(timeout, 1.0))
        return result


def _read_reply(channel: CLIChannel, deadline: float, limit: int = 16384) -> bytes:
    got = bytearray()
    with contextlib.suppress(TLSError, CLIError, OSError):
        while len(got) < limit:
            got += channel.receive(limit - len(got), deadline, at_least_one=True)
    return bytes(got)


def needs_client_certificate(err: BaseException | None) -> bool:
    return getattr(err, "code", None) == CLIENT_CERTIFICATE_REQUIRED


def probe_context(version: ssl.TLSVersion | None = None, suite: str | None = None,
                  group: str | None = None, *, everything: bool = False) -> TLSContext:
    """A client context that does not authenticate (capability probes; the certificate
    is verified separately).  ``everything``: offer every suite and group aiotls has, so
    that a refusal is about the version alone."""
    ctx = TLSContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if version is not None:
        ctx.minimum_version = ctx.maximum_version = version
    if suite is not None:
        ctx.set_ciphers(suite)
        if "_DHE_" in suite:
            ctx.set_groups(["ffdhe2048", "ffdhe3072", "ffdhe4096"])
    elif everything:
        ctx.set_ciphers(":".join(s.name for s in ALL_SUITES))
    elif version is not None and version < ssl.TLSVersion.TLSv1_2:
        ctx.set_ciphers(":".join(s.name for s in ALL_SUITES if not s.aead))
    if group is not None:
        ctx.set_groups([group])
    elif everything:
        ctx.set_groups(list(ALL_GROUPS))
    return ctx


def probe(label: str, target: DiagnoseTarget, ctx: TLSContext, timeout: float,
          warning: str | None = None, with_certificate: bool = False) -> Probe:
    got = attempt(target, ctx, timeout, with_certificate=with_certificate)
    err = got.error
    if err is None or got.handshake is not None or needs_client_certificate(err):
        # (a server that completed the handshake, or went as far as asking for a client
        # certificate, accepted this; its verdict on the certificate is another matter)
        return Probe(label, "accepted", None, warning)
    outcome: Literal["refused", "failed"] = \
        "refused" if isinstance(err, TLSError | CLIError) else "failed"
    return Probe(label, outcome, error_info(client_words(err)), None)


T = TypeVar("T")


def run_all(calls: Sequence[Callable[[], T]], concurrency: int) -> list[T]:
    """Run ``calls``, at most ``concurrency`` at once; their results in order."""
    if concurrency <= 1 or len(calls) <= 1:
        return [call() for call in calls]
    with ThreadPoolExecutor(max_workers=min(concurrency, len(calls)),
                            thread_name_prefix="aiotls-diagnose") as pool:
        futures = [pool.submit(call) for call in calls]
        return [f.result() for f in futures]
