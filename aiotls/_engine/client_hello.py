"""The client's ClientHello made from what tlslite wrote for the same context and name.

tlslite's ``_clientSendClientHello`` builds every ClientHello from the settings: the
cipher-suite lists filtered again, a dozen extension objects created and serialised, and,
when resuming, the whole message serialised once more for the PSK binder.  Of all that,
only the random, the legacy session ID, the key shares and the PSK offer differ between
two connections made from one context to one server name.

:class:`LeanClientHello` lets tlslite's method build the first ClientHello for a given
(validated settings, server name, ALPN list, client certificate or not) and remembers it:
its fixed fields and extension objects, and each extension's bytes.  Later ClientHellos
for the same key are that message with fresh values in the same places, drawn in the same
order as tlslite draws them (session ID, key shares, random), and the pre_shared_key
extension made as tlslite makes it (expired tickets dropped from the session, the
obfuscated ticket age, the binder over the truncated message); their bytes are written
once, from the remembered pieces.  The extension objects other than key_share and
pre_shared_key are shared with the first message: tlslite never changes them after
creating the ClientHello (a HelloRetryRequest replaces the key_share entries and appends
to the message's own list).

Anything else -- a TLS 1.2 session (ID or ticket), external PSKs, no TLS 1.3 offered,
heartbeat, SRP or anonymous suites, speed-ups off -- is tlslite's method.
``tests/test_client_hello.py`` checks bytes and state against tlslite's method.
"""

from __future__ import annotations

import time
from collections.abc import Generator
from typing import Any

from tlslite.constants import CipherSuite, ExtensionType
from tlslite.extensions import PreSharedKeyExtension, PskIdentity
from tlslite.utils import cryptomath

from .. import _crypto
from . import speedups
from .common import _Hooks
from .quick import _QUICK_EXTENSIONS
from .tickets import _fresh, ticket_secrets

#: Switched off by tests to run tlslite's method for the same handshake.
ENABLED = speedups.ENABLED

_MAX_TEMPLATES = 64  # per settings object: server names a client context connects to

#: The classes tlslite's (rebound) method makes the PSK offer with.
_PskIdentity: Any = _QUICK_EXTENSIONS.get("PskIdentity", PskIdentity)
_PreSharedKeyExtension: Any = _QUICK_EXTENSIONS.get("PreSharedKeyExtension",
                                                    PreSharedKeyExtension)


class _Template:
    """One ClientHello as tlslite wrote it, minus the values each connection draws."""

    __slots__ = (
        "after",
        "attrs",
        "before",
        "class_",
        "compression",
        "ff_listed",
        "groups",
        "head",
        "key_share_class",
        "keypair",
        "prefix",
        "static_after",
        "static_before",
        "suites",
    )

    def __init__(self, hello: Any, ff_listed: bool, keypair: bool) -> None:
        extensions = list(hello.extensions)
        if extensions and isinstance(extensions[-1], PreSharedKeyExtension):
            extensions.pop()
        at = next(i for i, e in enumerate(extensions) if e.extType == ExtensionType.key_share)
        key_share = extensions[at]
        self.key_share_class = type(key_share)
        self.groups = tuple(entry.group for entry in key_share.client_shares)
        self.static_before = extensions[:at]
        self.static_after = extensions[at + 1:]
        self.before = b"".join(bytes(e.write()) for e in self.static_before)
        self.after = b"".join(bytes(e.write()) for e in self.static_after)
        self.class_: Any = type(hello)
        self.attrs = {k: v for k, v in vars(hello).items()
                      if k not in ("random", "session_id", "extensions", "cipher_suites",
                                     "compression_methods")
                      and not k.startswith("_aiotls")}
        self.suites = tuple(hello.cipher_suites)
        self.compression = tuple(hello.compression_methods)
        self.head = bytes(hello.client_version)
        self.prefix = (2 * len(self.suites)).to_bytes(2, "big") + b"".join(
            s.to_bytes(2, "big") for s in self.suites) + bytes(
            (len(hello.compression_methods), *hello.compression_methods))
        self.ff_listed = ff_listed
        self.keypair = keypair


def _key_shares(shares: list[Any]) -> bytes:
    entries = b"".join(e.group.to_bytes(2, "big") + len(e.key_exchange).to_bytes(2, "big")
                       + bytes(e.key_exchange) for e in shares)
    body = len(entries).to_bytes(2, "big") + entries
    key_share: int = ExtensionType.key_share
    return key_share.to_bytes(2, "big") + len(body).to_bytes(2, "big") + body


class LeanClientHello(_Hooks):  # type: ignore[misc]
    """The client's ClientHello from a remembered one (see the module's text)."""

    #: client: this connection's ClientHello was made here (not by tlslite's method)
    _aiotls_lean_hello = False

    def _clientSendClientHello(self, settings: Any, session: Any, srpUsername: Any,
                               srpParams: Any, certParams: Any, anonParams: Any,
                               serverName: Any, nextProtos: Any, reqTack: Any,
                               alpn: Any) -> Generator[Any, None, None]:
        key = self._aiotls_hello_key(settings, session, srpParams, certParams, anonParams,
                                     serverName, nextProtos, reqTack, alpn)
        templates = None if key is None else settings.__dict__.get("_aiotls_hellos")
        template = None if templates is None else templates.get(key)
        if template is None:
            for result in super()._clientSendClientHello(
                    settings, session, srpUsername, srpParams, certParams, anonParams,
                    serverName, nextProtos, reqTack, alpn):
                if key is not None and result not in (0, 1):  # (the ClientHello, last)
                    self._aiotls_remember_hello(settings, key, result)
                yield result
            return
        hello = self._aiotls_lean_client_hello(template, settings, session, certParams)
        self._aiotls_lean_hello = True
        yield from self._sendMsg(hello)
        yield hello

    @staticmethod
    def _aiotls_hello_key(settings: Any, session: Any, srpParams: Any, certParams: Any,
                          anonParams: Any, serverName: Any, nextProtos: Any, reqTack: Any,
                          alpn: Any) -> tuple[Any, ...] | None:
        """What the remembered ClientHello depends on besides the settings; None: a
        ClientHello this path does not make."""
        if not ENABLED or srpParams or anonParams or not certParams \
                or settings.pskConfigs or settings.use_heartbeat_extension \
                or (3, 4) not in settings.versions or settings.maxVersion < (3, 4):
            return None
        if session is not None and (session.sessionID or session.tls_1_0_tickets):
            return None
        return (serverName, None if alpn is None else tuple(bytes(p) for p in alpn),
                certParams[1] is not None, bool(reqTack), nextProtos is not None)

    def _aiotls_remember_hello(self, settings: Any, key: tuple[Any, ...], hello: Any) -> None:
        if hello.ssl2 or hello.extensions is None or not any(
                e.extType == ExtensionType.key_share for e in hello.extensions):
            return
        templates = settings.__dict__.setdefault("_aiotls_hellos", {})
        if len(templates) >= _MAX_TEMPLATES:
            templates.clear()
        templates[key] = _Template(hello, self._aiotls_ff_listed,
                                   self._client_keypair is not None)

    def _aiotls_lean_client_hello(self, template: _Template, settings: Any, session: Any,
                                  certParams: Any) -> Any:
        """The ClientHello tlslite's method would make here, and its bytes, kept for
        sending (``_aiotls_whole``, see quick.py)."""
        get_random = cryptomath.getRandomBytes
        if template.keypair:
            self._client_keypair = certParams
        session_id = get_random(32)
        shares = [self._genKeyShareEntry(group, (3, 4)) for group in template.groups]
        key_share = template.key_share_class().create(shares)
        random = get_random(32)
        hello = template.class_.__new__(template.class_)
        hello.__dict__.update(template.attrs)
        hello.random = random
        hello.session_id = session_id
        hello.cipher_suites = list(template.suites)
        hello.compression_methods = list(template.compression)
        extensions = [*template.static_before, key_share, *template.static_after]
        hello.extensions = extensions
        self._aiotls_in_hello = False
        self._aiotls_ff_listed = template.ff_listed
        extensions_block = template.before + _key_shares(shares) + template.after
        offer = self._aiotls_ticket_offer(session)
        if offer is None:
            head = extensions_block
        else:
            ticket, age, binder_len = offer
            extensions.append(_PreSharedKeyExtension().create(
                [_PskIdentity().create(ticket.ticket, age)], [bytearray(binder_len)]))
            identity = bytes(ticket.ticket)
            identities = len(identity).to_bytes(2, "big") + identity + age.to_bytes(4, "big")
            binders_size = 2 + 1 + binder_len
            head = (extensions_block + ExtensionType.pre_shared_key.to_bytes(2, "big")
                    + (2 + len(identities) + binders_size).to_bytes(2, "big")
                    + len(identities).to_bytes(2, "big") + identities)
        extensions_size = len(head) + (0 if offer is None else binders_size)
        body_size = 2 + 32 + 1 + 32 + len(template.prefix) + 2 + extensions_size
        message = (b"\x01" + body_size.to_bytes(3, "big") + template.head + random
                   + b"\x20" + session_id + template.prefix
                   + extensions_size.to_bytes(2, "big") + head)
        if offer is not None:
            # (tlslite's update_binders: the binder over the transcript so far and the
            # message up to the binders)
            ext = extensions[-1]
            prf = "sha384" if binder_len == 48 else "sha256"
            # (the offered ticket is the session's first: the one tlslite's
            # calc_res_binder_psk finds by its identity)
            binder_key = ticket_secrets(session, ticket, prf, binder_len)[0]
            transcript = self._handshake_hash.copy()
            transcript.update(message)
            binder = bytearray(_crypto.hmac_digest(binder_key, transcript.digest(prf), prf))
            ext.binders[0] = binder
            message += (1 + binder_len).to_bytes(2, "big") + bytes((binder_len,)) + binder
        hello._aiotls_whole = message
        return hello

    @staticmethod
    def _aiotls_ticket_offer(session: Any) -> tuple[Any, int, int] | None:
        """As tlslite's method: the session's expired tickets dropped, then the first one
        offered with its obfuscated age (RFC 8446 4.2.11.1) and its binder's size."""
        if session is None or not session.tickets:
            return None
        now = time.time()
        session.tickets[:] = (i for i in session.tickets if _fresh(i, now))
        if not session.tickets:
            return None
        ticket = session.tickets[0]
        age = int(time.time() * 1000 - ticket.time * 1000 + ticket.ticket_age_add) % 2**32
        return ticket, age, 48 if session.cipherSuite in CipherSuite.sha384PrfSuites else 32
