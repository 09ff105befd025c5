"""Session tickets: sealed by aiotls, and kept across TLS 1.3 resumptions.

A server issues tickets sealed with the context's ticket keys (:mod:`aiotls._crypto`'s
``TicketSealer``, keys rotated by the context) instead of tlslite's, after the client's
certificate is verified, and opens them on resumption (:class:`TicketHooks`).  A TLS 1.2
client resumes only when the server echoed the session ID sent with the ticket (RFC 5077
3.4).  A TLS 1.3 client keeps a bounded number of tickets (:class:`_KeptTickets`) and
carries the unused ones of a resumed session into the next (:func:`_one_ticket`).
"""

from __future__ import annotations

import copy
import secrets
from collections.abc import Generator
from typing import Any

from tlslite.constants import AlertDescription as _TLAlert
from tlslite.constants import (
    CipherSuite,
    ContentType,
    HandshakeType,
)
from tlslite.messages import (
    NewSessionTicket,
    NewSessionTicket1_0,
    SessionTicketPayload,
)

from .. import _crypto
from . import speedups
from .codec import SwitchedParser
from .common import _Hooks
from .server13 import _Raw, early_secrets
from .verification import _chain_der

#: Switched off by tests to make TLS 1.3 tickets with tlslite's message objects.
ENABLED = speedups.ENABLED

#: At most this many unused TLS 1.3 tickets are carried from one session to the next.
_MAX_UNUSED_TICKETS = 8
_TICKET_MAX_AGE = 7 * 24 * 3600  # RFC 8446 4.6.1
#: At most this many TLS 1.3 tickets are kept from one connection (the newest): a server
#: may send any number of NewSessionTickets (RFC 8446 4.6.1), and each one kept is memory.
#: As many as a resumption uses: one offered, the others carried (see _one_ticket).
_MAX_KEPT_TICKETS = _MAX_UNUSED_TICKETS + 1


class _KeptTickets(list):  # type: ignore[type-arg]
    """A client connection's TLS 1.3 tickets: tlslite appends each NewSessionTicket to the
    connection's list (its session shares it), and so does :meth:`Engine.take_ticket`; past
    ``_MAX_KEPT_TICKETS`` the oldest ones are dropped."""

    __slots__ = ()

    def append(self, ticket: Any) -> None:
        super().append(ticket)
        if len(self) > _MAX_KEPT_TICKETS:
            del self[:len(self) - _MAX_KEPT_TICKETS]



def _fresh(ticket: Any, now: float) -> bool:
    """A TLS 1.3 ticket still within its lifetime and RFC 8446 4.6.1's seven days (the
    client's check, as tlslite makes it before offering one)."""
    return bool(ticket.time + ticket.ticket_lifetime > now and ticket.time + _TICKET_MAX_AGE > now)


def _resumption_psk(secret: Any, nonce: Any) -> bytes:
    """A ticket's PSK from the resumption master secret and the ticket's nonce (RFC 8446
    4.6.1), with tlslite's ``calc_res_binder_psk``'s choice of hash: by the secret's size."""
    return _crypto.hkdf_expand_label(secret, b"resumption", nonce, len(secret),
                                     "sha256" if len(secret) == 32 else "sha384")


def ticket_secrets(session: Any, ticket: Any, prf_name: str,
                   prf_size: int) -> tuple[bytes, bytes]:
    """A client's (binder finished key, ``derived`` secret) for a TLS 1.3 ``ticket`` of
    ``session`` (:func:`early_secrets` of its PSK, RFC 8446 4.6.1: tlslite's
    ``calc_res_binder_psk``), kept on the ticket: a client resuming with one ticket again
    and again derives them once."""
    secret = session.resumptionMasterSecret
    key = (prf_name, bytes(secret))
    kept = getattr(ticket, "_aiotls_early", None)
    if kept is not None and kept[0] == key:
        return kept[1]  # type: ignore[no-any-return]
    found = early_secrets(_resumption_psk(secret, ticket.ticket_nonce), prf_name, prf_size)
    ticket._aiotls_early = (key, found)
    return found


def _one_ticket(session: Any, now: float) -> tuple[Any, list[tuple[Any, Any]]]:
    """Split a client's session into what this handshake offers and what it keeps.

    A TLS 1.3 session holds tickets, each bound to the resumption secret of the connection
    that received it: the session's own tickets (newest, from its connection) and the
    unused ones carried from the session it resumed (``_aiotls_unused``: (session, ticket)
    pairs).  The oldest fresh ticket is offered, on a copy of its own session holding only
    it (tlslite offers ``tickets[0]`` and filters that list in place: the caller's session
    is never changed).  The others are returned, to be kept by the next session if this
    handshake resumes: so a server that sends no new ticket on resumption (node, nginx,
    OpenSSL with a ticket-key callback) still leaves the next connection something to
    resume with, and following the chain of sessions offers every ticket once (RFC 8446
    C.4).  Passing the same session to several connections offers its first ticket each
    time, as OpenSSL's sessions do.  TLS 1.2 sessions pass through unchanged.
    """
    own = session.tickets or []
    carried = getattr(session, "_aiotls_unused", None) or []
    if not own and not carried:
        return session, []
    fresh = [(owner, ticket) for owner, ticket in (*carried, *((session, t) for t in own))
             if _fresh(ticket, now)][-(_MAX_UNUSED_TICKETS + 1):]
    if not fresh:
        offered = copy.copy(session)
        offered.tickets = []
        return offered, []
    owner, ticket = fresh[0]
    offered = copy.copy(owner)
    offered.tickets = [ticket]
    offered._aiotls_unused = None
    return offered, fresh[1:]



def _lean_payload(plain: bytes) -> Any:
    """The SessionTicketPayload of a TLS 1.3 ticket as :meth:`TicketHooks._aiotls_queue_tickets`
    writes it (version 2, no certificate chain), read without tlslite's parser (the same
    attributes and types as its ``parse``); None for any other layout, which tlslite's
    parser then reads (or refuses)."""
    size = len(plain)
    if size < 4 or plain[:2] != b"\x00\x02":
        return None
    n = int.from_bytes(plain[2:4], "big")
    at = 4 + n
    if size < at + 5:
        return None
    nonce_end = at + 5 + plain[at + 4]
    # time (8), empty chain (3), etm, ems, name length (2)
    if size < nonce_end + 15 or plain[nonce_end + 8:nonce_end + 11] != b"\x00\x00\x00":
        return None
    name_end = nonce_end + 15 + int.from_bytes(plain[nonce_end + 13:nonce_end + 15], "big")
    if name_end != size:
        return None
    payload = SessionTicketPayload()
    payload.version = 2
    payload.master_secret = bytearray(plain[4:at])
    payload.protocol_version = (plain[at], plain[at + 1])
    payload.cipher_suite = int.from_bytes(plain[at + 2:at + 4], "big")
    payload.nonce = bytearray(plain[at + 5:nonce_end])
    payload.creation_time = int.from_bytes(plain[nonce_end:nonce_end + 8], "big")
    payload._cert_chain = []
    payload.encrypt_then_mac = bool(plain[nonce_end + 11])
    payload.extended_master_secret = bool(plain[nonce_end + 12])
    payload.server_name = bytearray(plain[nonce_end + 15:name_end])
    return payload


class TicketHooks(_Hooks):  # type: ignore[misc]
    """Session tickets: aiotls's sealed tickets in place of tlslite's, and resumption."""


    def _serverSendTickets(self, settings: Any) -> Generator[Any, None, None]:
        # TLS 1.3 server: the client's Certificate/CertificateVerify/Finished were checked by
        # tlslite; verify the chain before the handshake is declared done or tickets are issued.
        if self.version >= (3, 4) and self._aiotls_policy is not None:
            chain = _chain_der(self.session.clientCertChain if self.session else None)
            if chain or not self._aiotls_defer_client_cert:
                yield from self._aiotls_verify(chain, _TLAlert.certificate_required)
        sealer = self._aiotls_tickets
        count = settings.ticket_count if self.version > (3, 3) else min(1, settings.ticket_count)
        if self.version > (3, 3) and not self._aiotls_sent_certificate:
            count = min(1, count)  # after a resumption one ticket replaces the one used (as OpenSSL)
        if sealer is None or not count:
            return
        secret = self.session.masterSecret if self.version < (3, 4) \
            else self.session.resumptionMasterSecret
        now = int(self._aiotls_now().timestamp())
        if ENABLED and self.version > (3, 3) and not self.session.clientCertChain \
                and self.extendedMasterSecret:
            self._aiotls_lean_tickets = count
            self._aiotls_queue_tickets(settings, sealer, secret, now, count)
            yield from self._queue_flush()
            return
        for _ in range(count):
            payload = SessionTicketPayload().create(
                secret, self.version, self.session.cipherSuite, now,
                bytearray(secrets.token_bytes(16)),
                client_cert_chain=self.session.clientCertChain,
                encrypt_then_mac=self._recordLayer._get_pending_state_etm(),
                extended_master_secret=self.extendedMasterSecret,
                server_name=self.session.serverName.encode("utf-8")
                if self.session.serverName else bytearray())
            sealed = bytearray(sealer.seal(bytes(payload.write())))
            if self.version < (3, 4):
                ticket_msg = NewSessionTicket1_0().create(settings.ticketLifetime, sealed)
            else:
                ticket_msg = NewSessionTicket().create(
                    settings.ticketLifetime, secrets.randbelow(2**32), payload.nonce, sealed, [])
            self._queue_message(ticket_msg)
        yield from self._queue_flush()

    #: TLS 1.3 tickets this server made as bytes (see _aiotls_queue_tickets)
    _aiotls_lean_tickets = 0

    def _aiotls_queue_tickets(self, settings: Any, sealer: Any, secret: Any, now: int,
                              count: int) -> None:
        """TLS 1.3 tickets (extended master secret, no client certificate), written as
        bytes: the same payload encoding as tlslite's ``SessionTicketPayload`` (version 2:
        secret, version, suite, nonce, time, an empty chain, the flags, the name), the same
        NewSessionTicket, the randomness drawn in the same order."""
        session = self.session
        name = session.serverName.encode("utf-8") if session.serverName else b""
        etm = bool(self._recordLayer._get_pending_state_etm())
        head = b"\x00\x02" + len(secret).to_bytes(2, "big") + bytes(secret) \
            + bytes(self.version) + session.cipherSuite.to_bytes(2, "big")
        tail = now.to_bytes(8, "big") + b"\x00\x00\x00" + bytes((etm, True)) \
            + len(name).to_bytes(2, "big") + name
        lifetime = settings.ticketLifetime.to_bytes(4, "big")
        for _ in range(count):
            nonce = secrets.token_bytes(16)
            sealed = sealer.seal(head + b"\x10" + nonce + tail)
            body = lifetime + secrets.randbelow(2**32).to_bytes(4, "big") + b"\x10" + nonce \
                + len(sealed).to_bytes(2, "big") + sealed + b"\x00\x00"
            self._queue_message(_Raw(ContentType.handshake, bytes((
                HandshakeType.new_session_ticket,)) + len(body).to_bytes(3, "big") + body))

    def _tryDecrypt(self, settings: Any, identity: Any = None, ticket: Any = None) -> Any:
        """Open a session ticket sealed by :meth:`_serverSendTickets` (ours, not tlslite's)."""
        sealer = self._aiotls_tickets
        blob = ticket if self.version < (3, 4) else (identity.identity if identity else None)
        if sealer is None or not blob:
            return None, None
        plain = sealer.open(bytes(blob))
        if plain is None:
            return None, None
        payload = _lean_payload(plain) if ENABLED and self.version > (3, 3) else None
        if payload is None:
            try:
                payload = SessionTicketPayload().parse(SwitchedParser(bytearray(plain)))
            except (ValueError, SyntaxError):
                return None, None
        if payload.creation_time + settings.ticketLifetime < self._aiotls_now().timestamp():
            return None, None
        if self.version < (3, 4):
            return None, payload
        prf = "sha384" if payload.cipher_suite in CipherSuite.sha384PrfSuites else "sha256"
        psk = bytearray(_resumption_psk(payload.master_secret, payload.nonce))
        return (identity.identity, psk, prf), payload

    def _clientResume(self, session: Any, serverHello: Any, *args: Any,
                      **kwargs: Any) -> Generator[Any, None, None]:
        # tlslite's client takes any TLS 1.2 session holding a ticket as resumed, whatever
        # the server answered: a server that rejects the ticket (new ticket keys after a
        # restart, another server behind the name) then failed every reconnection with
        # unexpected_message.  RFC 5077 3.4: the server accepted the ticket only if it
        # echoed the session ID the client sent with it.
        if session is not None and session.tls_1_0_tickets and not (
                session.sessionID and serverHello.session_id == session.sessionID):
            return  # a full handshake follows
        yield from super()._clientResume(session, serverHello, *args, **kwargs)
