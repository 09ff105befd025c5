"""The tlslite connection class the engine drives, assembled from the mixins.

:class:`_TLSLiteConnection` is tlslite's ``TLSConnection`` (rebound, :mod:`.base`) with
aiotls's verification (:mod:`.verification`), tickets (:mod:`.tickets`) and fixes
(:mod:`.fixes`); it declares the per-connection ``_aiotls_*`` state they share, routes the
key exchange through OpenSSL (:mod:`.accel`), and passes each received handshake message
through the checks of :data:`_RECEIVED_CHECKS`.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Generator
from typing import Any

from tlslite import TLSConnection as _TLSLiteBase
from tlslite.bufferedsocket import BufferedSocket
from tlslite.constants import (
    TLS_1_1_DOWNGRADE_SENTINEL,
    TLS_1_2_DOWNGRADE_SENTINEL,
    ContentType,
    ExtensionType,
    HandshakeType,
)
from tlslite.constants import AlertDescription as _TLAlert
from tlslite.defragmenter import Defragmenter
from tlslite.errors import (
    TLSLocalAlert,
)
from tlslite.handshakesettings import KNOWN_VERSIONS as _KNOWN_VERSIONS
from tlslite.messages import (
    ClientHello,
    Finished,
    ServerHello,
)

from .. import _crypto
from ..errors import (
    AlertDescription,
    InternalError,
    PeerIncompatible,
    TLSError,
)
from . import keylog, speedups
from .accel import _FAST_GROUPS, _FF_GROUPS, _accelerate_kex, _FastADH, _FFKeyExchange, _KeyExchange
from .base import _ReboundTLSConnection
from .client13 import LeanClient13
from .client_cert import ClientCertificateHooks
from .client_hello import LeanClientHello
from .fixes import UpstreamFixes, _TolerantServer
from .hybrid import HYBRID_GROUPS, HybridKeyExchange, HybridShares
from .plainread import PlainHellos
from .psk import ExternalPSKHooks
from .records import _RecordLayer
from .server13 import LeanServer13
from .sni import ServerNameHooks
from .tickets import TicketHooks, _KeptTickets
from .verification import VerificationHooks, _Policy


def _remembered(cache: dict[tuple[Any, ...], tuple[Any, ...]], values: tuple[Any, ...],
                owners: tuple[Any, ...], make: Callable[[], Any]) -> Any:
    """``make()``, remembered in ``cache`` for these per-context objects (``owners``:
    settings, key, certificates, compared by identity and kept alive by the entry) and
    plain ``values``; at most 257 entries (the cache is emptied when full)."""
    key = (*(id(owner) for owner in owners), *values)
    hit = cache.get(key)
    if hit is None or any(kept is not owner for kept, owner in zip(hit[0], owners, strict=True)):
        result = make()
        if len(cache) > 256:
            cache.clear()
        hit = cache[key] = (owners, result)
    return hit[1]


#: One Defragmenter's message-type tables, built once (see _share_defragmenter_tables).
_DEFRAGMENTER_TABLES: tuple[list[int], dict[int, Any]] | None = None


def _share_defragmenter_tables(defragmenter: Any) -> None:
    """Point a connection's defragmenter at tables shared by every connection.

    tlslite builds, per connection, the same list of message types and one size function
    (a closure) per type, and never changes them afterwards.  Shared, they are about a
    dozen fewer objects per connection for the cyclic garbage collector to walk on every
    full pass, which a server holding thousands of connections pays again and again.
    The per-connection ``buffers`` stay its own.
    """
    global _DEFRAGMENTER_TABLES
    if _DEFRAGMENTER_TABLES is None:
        if speedups.ENABLED:  # (a handshake message's size read without a tlslite Parser)
            defragmenter.decoders[ContentType.handshake] = _handshake_size
        _DEFRAGMENTER_TABLES = (defragmenter.priorities, defragmenter.decoders)
    else:
        defragmenter.priorities, defragmenter.decoders = _DEFRAGMENTER_TABLES


def _handshake_size(data: bytes | bytearray) -> int | None:
    """tlslite's defragmenter decoder for handshake messages (type, 3-byte length, body):
    the message's size once it is whole in ``data``, else None -- without the Parser
    tlslite's builds each time it looks (every handshake message, every record)."""
    if len(data) < 4:
        return None
    length = (data[1] << 16) | (data[2] << 8) | data[3]
    return None if len(data) - 4 < length else 4 + length



class _SpentTranscript:
    """The handshake transcript of a finished handshake that nothing can read again.

    tlslite keeps hashing every handshake message (tickets, KeyUpdates) into the
    transcript after the handshake; only post-handshake authentication reads it again,
    through the copy taken at the end (``_first_handshake_hashes``).  Where that cannot
    happen, this stands in: updates cost nothing and the hash objects (three per copy)
    are freed, fewer objects for the cyclic garbage collector to walk per connection.
    """

    __slots__ = ()

    def update(self, data: Any) -> None:
        return None

    def copy(self) -> _SpentTranscript:
        return self

    def digest(self, digest: str | None = None) -> Any:
        raise InternalError(
            "the handshake transcript was read after the handshake",
            cause="a bug in aiotls: it stopped keeping a transcript nothing should read",
            hint="please report it to aiotls", alert=AlertDescription.internal_error,
            code="transcript-spent")


_SPENT_TRANSCRIPT = _SpentTranscript()


class _TLSLiteConnection(ServerNameHooks, ClientCertificateHooks, ExternalPSKHooks,
                         VerificationHooks, TicketHooks, LeanClientHello, PlainHellos,
                         HybridShares, UpstreamFixes, LeanServer13, LeanClient13,
                         _TolerantServer):
    """tlslite's TLSConnection with aiotls's per-connection seams."""

    _aiotls_policy: _Policy | None = None
    _aiotls_error: TLSError | None = None
    _aiotls_tickets: _crypto.TicketSealer | None = None
    _aiotls_now: Callable[[], datetime.datetime]
    _aiotls_sent_certificate = False
    #: server: the TLS 1.3 flight was written by :mod:`.server13` (not tlslite's method)
    _aiotls_lean = False
    #: client: the TLS 1.3 server flight was taken by :mod:`.client13` (not tlslite's method)
    _aiotls_lean_client = False
    _aiotls_pha_chain: list[bytes] | None = None
    _aiotls_defer_client_cert = False
    #: verify_data of the first Finished of the handshake, sent or received (tls-unique)
    _aiotls_first_finished: bytes | None = None
    #: server: the cipher suites the client offered
    _aiotls_client_suites: tuple[int, ...] = ()
    #: The handshake settings; client: the ALPN protocols offered, its key and chain if a
    #: certificate is loaded, and whether the server asked for one (CertificateRequest).
    _aiotls_settings: Any = None
    _aiotls_alpn: list[bytearray] | None = None
    _aiotls_credentials: tuple[Any, Any] | None = None  # (private key, chain)
    _aiotls_certificate_requested = False
    #: Client: the server's CertificateRequest (it decides certificate compression)
    _aiotls_certificate_request: Any = None
    #: The key log (keylog.attach), and the ClientHello's random its lines name the
    #: connection by (noted only when keys are logged).
    _aiotls_client_random: bytes | None = None
    _aiotls_keylog: Any = None
    #: The handshake trace (trace.attach), also the record layer's; None when off.
    _aiotls_trace: Any = None
    #: RFC 7627 required of TLS 1.2 peers (TLSContext.require_extended_master_secret).
    _aiotls_require_ems = True
    #: (id(settings), id(key), version, certificate type, ECDSA curve) -> ((settings, key),
    #: result)
    _aiotls_sig_lists: dict[tuple[Any, ...], tuple[Any, ...]] = {}

    def __init__(self, sock: Any) -> None:
        super().__init__(sock)
        _share_defragmenter_tables(self._defragmenter)

    def _aiotls_spend_transcript(self) -> None:
        """Once the handshake is done: drop the transcript copies nothing can read again
        (see :class:`_SpentTranscript`).  Post-handshake authentication still can where a
        TLS 1.3 client offered it (it has a certificate) or a server's client did."""
        self._pre_client_hello_handshake_hash = None  # (a server's, for the ClientHello)
        pha = self._client_keypair is not None if self._client else self._pha_supported
        if self.version >= (3, 4) and pha:
            return
        self._first_handshake_hashes = None
        self._handshake_hash = _SPENT_TRANSCRIPT

    @staticmethod
    def _sigHashesToList(settings: Any, privateKey: Any = None, certList: Any = None,
                         version: Any = (3, 3)) -> list[Any]:
        # The signature-scheme list depends only on the settings (validated once per
        # context, never changed), our private key, the version, and of the chain only on
        # what tlslite reads of it: the first certificate's algorithm and, for ECDSA, its
        # curve.  Remembered on exactly those: a client passes the peer's chain, a new
        # object per connection, which must neither miss every time nor be kept alive.
        if not speedups.ENABLED:
            return list(_ReboundTLSConnection._sigHashesToList(settings, privateKey, certList,
                                                               version))
        cert_type = curve = None
        if certList and certList.x509List:
            first = certList.x509List[0]
            cert_type = first.certAlg
            curve = first.publicKey.curve_name if cert_type == "ecdsa" else None
        return list(_remembered(
            _TLSLiteConnection._aiotls_sig_lists, (tuple(version), cert_type, curve),
            (settings, privateKey),
            lambda: _ReboundTLSConnection._sigHashesToList(settings, privateKey, certList,
                                                           version)))

    #: (id(settings), id(chain), id(key), version, suites, the hello's suites, groups,
    #: signature_algorithms_cert, signature_algorithms) -> ((settings, chain, key), choice)
    _aiotls_certificate_choices: dict[tuple[Any, ...], tuple[Any, ...]] = {}

    def _server_select_certificate(self, settings: Any, client_hello: Any, cipher_suites: Any,
                                   cert_chain: Any, private_key: Any, version: Any) -> Any:
        # tlslite's choice of suite, signature scheme and certificate is a function of the
        # settings, the certificate, the version, the suites and the hello's suites, groups
        # and signature algorithms (and of PSK identities and virtual hosts, which are not
        # remembered): remembered per context, as a client sends the same lists each time.
        if not speedups.ENABLED or settings.pskConfigs or settings.virtual_hosts:
            return super()._server_select_certificate(settings, client_hello, cipher_suites,
                                                      cert_chain, private_key, version)
        lists = []
        for ext_type in (ExtensionType.supported_groups, ExtensionType.signature_algorithms_cert,
                         ExtensionType.signature_algorithms):
            ext = client_hello.getExtension(ext_type)
            value = None if ext is None else (
                ext.groups if ext_type == ExtensionType.supported_groups else ext.sigalgs)
            lists.append(None if value is None else tuple(value))
        return _remembered(
            _TLSLiteConnection._aiotls_certificate_choices,
            (tuple(version), tuple(cipher_suites), tuple(client_hello.cipher_suites), *lists),
            (settings, cert_chain, private_key),
            lambda: super(_TLSLiteConnection, self)._server_select_certificate(
                settings, client_hello, cipher_suites, cert_chain, private_key, version))

    if speedups.ENABLED:
        #: tlslite's ``version``: its getter reads the record layer's ``version`` property,
        #: which reads ``_version``; read here in one step (~60 times per handshake).  The
        #: setter is tlslite's.
        version = property(lambda self: self._recordLayer._version, _TLSLiteBase.version.fset,
                           doc=_TLSLiteBase.version.__doc__)

    @staticmethod
    def _getKEX(group: int, version: tuple[int, int]) -> Any:
        if group in HYBRID_GROUPS:  # (both modes: tlslite's own needs kyber-py)
            return HybridKeyExchange(group, version)
        if not speedups.ENABLED:
            return _TLSLiteBase._getKEX(group, version)
        if group in _FAST_GROUPS:
            return _KeyExchange(group, version)
        if group in _FF_GROUPS:
            return _FFKeyExchange(group, version)
        return _TLSLiteBase._getKEX(group, version)


    def _getMsg(self, expectedType: Any, secondaryType: Any = None,
                constructorType: Any = None) -> Any:
        if self._aiotls_replay is not None and secondaryType == HandshakeType.client_hello:
            return self._aiotls_replayed(self._aiotls_replay)  # (see accept.py)
        messages = super()._getMsg(expectedType, secondaryType, constructorType)
        if expectedType != ContentType.handshake:
            return messages  # (post-handshake reads ask for several content types)
        return self._aiotls_checked(messages)

    def _sendMsg(self, msg: Any, randomizeFirstBlock: bool = True,
                 update_hashes: bool = True) -> Any:
        if self._aiotls_first_finished is None and isinstance(msg, Finished):
            self._aiotls_first_finished = bytes(msg.verify_data)
        elif self._aiotls_keylog is not None and self._aiotls_client_random is None \
                and isinstance(msg, ClientHello):
            self._aiotls_client_random = bytes(msg.random)
        return super()._sendMsg(msg, randomizeFirstBlock, update_hashes)

    def _handshakeDone(self, resumed: bool) -> None:
        super()._handshakeDone(resumed)
        if self._aiotls_keylog is not None:
            keylog.handshake_done(self)
        if self._aiotls_trace is not None:
            self._aiotls_trace.done(self)

    #: The peer's hello as far as errors need it (see translate.py, which must not read
    #: tlslite's message texts): the highest version it offered or chose, and whether a
    #: ServerHello carried RFC 8446 4.1.3's downgrade sentinel where it means a downgrade.
    _aiotls_peer_version: tuple[int, int] | None = None
    _aiotls_downgrade_sentinel = False

    def _aiotls_checked(self, messages: Any) -> Generator[Any, None, None]:
        for result in messages:
            if not isinstance(result, int):
                if self._aiotls_first_finished is None and isinstance(result, Finished):
                    self._aiotls_first_finished = bytes(result.verify_data)
                if isinstance(result, ClientHello | ServerHello):
                    self._aiotls_note_hello(result)
                check = _RECEIVED_CHECKS.get((self._client, getattr(result, "handshakeType", -1)))
                if check is not None:
                    yield from check(self, result)
            yield result

    def _aiotls_note_hello(self, hello: Any) -> None:
        """Remember the peer's version (as tlslite computes it) and a downgrade sentinel."""
        if isinstance(hello, ClientHello):
            if self._aiotls_keylog is not None and self._aiotls_client_random is None:
                self._aiotls_client_random = bytes(hello.random)
            version = tuple(hello.client_version)
            offered = hello.getExtension(ExtensionType.supported_versions)
            if version >= (3, 3) and offered is not None:
                version = max([version, *(tuple(v) for v in offered.versions or ()
                                          if tuple(v) in _KNOWN_VERSIONS)])
            self._aiotls_peer_version = version
            return
        chosen = hello.getExtension(ExtensionType.supported_versions)
        version = tuple(chosen.version) if chosen is not None and chosen.version \
            else tuple(hello.server_version)
        self._aiotls_peer_version = version
        settings = self._aiotls_settings
        if settings is not None:
            tail = bytes(hello.random[-8:])
            highest = tuple(settings.maxVersion)
            self._aiotls_downgrade_sentinel = (
                (highest > (3, 3) and version <= (3, 3)
                 and tail in (TLS_1_2_DOWNGRADE_SENTINEL, TLS_1_1_DOWNGRADE_SENTINEL))
                or (highest == (3, 3) and version < (3, 3)
                    and tail == TLS_1_1_DOWNGRADE_SENTINEL))

    def _serverCertKeyExchange(self, *args: Any, **kwargs: Any) -> Generator[Any, None, None]:
        # TLS 1.2 server: remember the ECDHE group (tlslite only records it for clients).
        key_exchange = args[4] if len(args) > 4 else kwargs.get("keyExchange")
        _accelerate_kex(key_exchange)
        for result in super()._serverCertKeyExchange(*args, **kwargs):
            group = getattr(key_exchange, "group_id", None)
            if group is not None:
                self.ecdhCurve = group
            yield result

    def _clientKeyExchange(self, *args: Any, **kwargs: Any) -> Generator[Any, None, None]:
        # TLS 1.2 client: the (EC)DHE arithmetic in OpenSSL (see _FastAECDH, _FastADH).
        key_exchange = args[8] if len(args) > 8 else kwargs.get("keyExchange")
        _accelerate_kex(key_exchange)
        try:
            for result in super()._clientKeyExchange(*args, **kwargs):
                if isinstance(key_exchange, _FastADH) and key_exchange.group_id is not None:
                    self.ecdhCurve = key_exchange.group_id  # (tlslite records ECDHE groups only)
                yield result
        except TLSLocalAlert:
            if isinstance(key_exchange, _FastADH) and key_exchange.refused_parameters:
                self._aiotls_error = PeerIncompatible(
                    "the server chose Diffie-Hellman parameters that are not one of the RFC 7919 "
                    "groups offered (ffdhe2048...)",
                    cause="the server uses DH parameters of its own (a dhparam file, or its "
                    "library's defaults) instead of negotiating a named group",
                    hint="configure the server with ECDHE or an RFC 7919 group; or do not "
                    "enable DHE suites on this client",
                    alert=_TLAlert.insufficient_security, code="dh-parameters-not-offered")
            raise


#: Checks on received handshake messages: (we are the client, handshake type) -> check.
_RECEIVED_CHECKS: dict[tuple[bool, int], Callable[[Any, Any], Generator[Any, None, None]]] = {
    (False, HandshakeType.client_hello): _TLSLiteConnection._aiotls_screen_client_hello,
    (True, HandshakeType.encrypted_extensions): _TLSLiteConnection._aiotls_check_alpn,
    (True, HandshakeType.certificate_request):
        _TLSLiteConnection._aiotls_note_certificate_request,
    (True, HandshakeType.certificate_verify): _TLSLiteConnection._aiotls_check_certificate_verify,
}



# --- a connection made from a template -------------------------------------------------------

#: The attributes of tlslite's connection that each connection gets fresh (the others are
#: immutable values, the same for all): sockets, record layer, defragmenter buffers,
#: transcript, tickets and buffers.
_FRESH = frozenset({"sock", "_recordLayer", "_defragmenter", "_handshake_hash", "tickets",
                    "tls_1_0_tickets", "_buffer", "_cert_requests", "_clientRandom",
                    "_serverRandom"})
_IMMUTABLE = (type(None), bool, int, float, str, bytes, tuple, frozenset)
#: A new connection's other attributes, as tlslite-ng's __init__ sets them (None: not
#: known yet, or tlslite-ng sets one this copy would share although it can change).
_TEMPLATE: dict[str, Any] | None = None
_TEMPLATE_CHECKED = False


def make_connection(sock: Any, records: Any) -> _TLSLiteConnection:
    """tlslite's connection over ``sock``, with aiotls's record layer over ``records`` and
    its ticket list: as ``_TLSLiteConnection(sock)`` and those replacements make it.

    tlslite-ng's __init__ builds a record layer (four states), a transcript (six hashes)
    and size closures that aiotls replaces at once; here the first connection is built
    that way and the next ones copy its immutable attributes, with the ones in
    :data:`_FRESH` made anew (the transcript until ``_handshakeStart`` makes the real
    one).  About 6 us and a dozen short-lived objects less per connection; a test compares
    both ways attribute by attribute.
    """
    global _TEMPLATE, _TEMPLATE_CHECKED
    template = _TEMPLATE
    if template is None:
        tl = _TLSLiteConnection(sock)
        tl._recordLayer = _RecordLayer(tl.sock, records)
        tl.tickets = _KeptTickets()
        if speedups.ENABLED and not _TEMPLATE_CHECKED:
            _TEMPLATE_CHECKED = True
            attrs = vars(tl)
            if {k for k, v in attrs.items() if not isinstance(v, _IMMUTABLE)} == _FRESH:
                _TEMPLATE = {k: v for k, v in attrs.items() if k not in _FRESH}
        return tl
    tl = _TLSLiteConnection.__new__(_TLSLiteConnection)
    buffered = BufferedSocket(sock)
    defragmenter = Defragmenter()
    assert _DEFRAGMENTER_TABLES is not None  # (the first connection built them)
    defragmenter.priorities, defragmenter.decoders = _DEFRAGMENTER_TABLES
    defragmenter.buffers = {kind: bytearray() for kind in defragmenter.priorities}
    tl.__dict__.update(template, sock=buffered, _recordLayer=_RecordLayer(buffered, records),
                    _defragmenter=defragmenter, _handshake_hash=_SPENT_TRANSCRIPT,
                    tickets=_KeptTickets(), tls_1_0_tickets=[], _buffer=bytearray(),
                    _cert_requests={}, _clientRandom=bytearray(), _serverRandom=bytearray())
    return tl
