"""The TLS 1.3 client's reading of the server's flight in the common case.

tlslite's ``_clientTLS13Handshake`` reads EncryptedExtensions, Certificate,
CertificateVerify and Finished one at a time through its generator stack (a record, the
defragmenter, a message object per message), then answers.
:meth:`LeanClient13._clientTLS13Handshake` installs the server's handshake keys as tlslite
does, then reads the flight straight from the socket's inbox without consuming it: each
record opened by aiotls's record layer, each message parsed and checked when it arrives,
where tlslite checks it (the chain -- its key against the settings and aiotls's
verification -- and the signature at the CertificateVerify; the Finished value), against a
transcript kept apart.  A flight still arriving is waited for while what came checks out
(tlslite would be waiting too: the connection feeds it one record at a time).  A whole,
sound flight of the usual shape (EncryptedExtensions with nothing but ALPN,
record_size_limit, an SNI acknowledgement or the server's groups; a certificate and its
CertificateVerify unless resuming; Finished) is then taken in one step: the same records
consumed, transcript, keys, Finished, session and state as tlslite's method leaves.

Anything else -- a CertificateRequest, a compressed certificate (RFC 8879) in an algorithm
not offered, another extension, a record or message that does not check out, a client
certificate or external PSKs configured, psk_ke, KEM groups other than X25519MLKEM768, CCM
suites, speed-ups off -- goes to tlslite's method
before anything was consumed (it installs the same keys again), so its errors and alerts
are tlslite's, with aiotls's hooks. ``tests/test_client13.py`` and ``test_lean13.py``
check bytes and state against tlslite's method, handshake by handshake.
"""

from __future__ import annotations

import hmac
from collections.abc import Generator
from typing import Any

from tlslite.constants import (
    CertificateType,
    CipherSuite,
    ContentType,
    ExtensionType,
    HandshakeType,
)
from tlslite.handshakesettings import CURVE_ALIASES
from tlslite.session import Session
from tlslite.tlsconnection import tackpyLoaded

from .. import _crypto
from ..errors import CertificateError
from . import speedups
from .accel import _FAST_GROUPS
from .base import _FastKeyExchange
from .certcompress import ALGORITHM_NAMES, BoundedCompressedCertificate
from .codec import FastParser
from .common import _Hooks
from .hybrid import HYBRID_GROUPS
from .quick import _QUICK_MESSAGES
from .rebind import _FAST_NAMES
from .records import WAIT as _WAIT
from .records import _RecordLayer
from .server13 import (
    _CCS,
    _TLS13,
    _Raw,
    _signing_params,
    application_secrets,
    handshake_secrets,
    no_psk_derived,
)
from .tickets import ticket_secrets
from .verification import _chain_der

#: Switched off by tests to run tlslite's method for the same handshake.
ENABLED = speedups.ENABLED

#: Suites whose records aiotls's record layer protects (the flight is opened there).
_SUITES = frozenset({CipherSuite.TLS_AES_128_GCM_SHA256, CipherSuite.TLS_AES_256_GCM_SHA384,
                     CipherSuite.TLS_CHACHA20_POLY1305_SHA256})
#: EncryptedExtensions this path understands; any other goes to tlslite's method.
_EE_KNOWN = frozenset({ExtensionType.alpn, ExtensionType.record_size_limit,
                       ExtensionType.server_name, ExtensionType.supported_groups})
#: The ECDSA curves a TLS 1.3 certificate may use, and the hash each signs with.
_CURVE_HASHES = {"secp256r1": "sha256", "secp384r1": "sha384", "secp521r1": "sha512",
                 "brainpoolP256r1": "sha256", "brainpoolP384r1": "sha384",
                 "brainpoolP512r1": "sha512"}

#: tlslite's SignatureScheme with its names remembered (rebind.py).
_SignatureSchemes = _FAST_NAMES["SignatureScheme"]

_EncryptedExtensions = _QUICK_MESSAGES["EncryptedExtensions"]
_Certificate = _QUICK_MESSAGES["Certificate"]
_CertificateVerify = _QUICK_MESSAGES["CertificateVerify"]
_Finished = _QUICK_MESSAGES["Finished"]


def _parser_past_type(data: bytes | bytearray) -> Any:
    """A tlslite parser over one handshake message, past its type byte (as ``_getMsg``)."""
    parser = FastParser(bytearray(data))
    parser.get(1)
    return parser


class _Flight:
    """The server's flight as it is read from the socket's inbox, without consuming it:
    records opened with the server's handshake keys (their sequence number runs on; if
    the flight goes to tlslite's method, it installs the same keys anew), each message
    parsed and checked as tlslite would when it arrives, the transcript kept apart."""

    __slots__ = ("ccs", "certificate", "conn", "encrypted_records", "expected", "extensions",
                 "finished", "handshake", "messages", "pos", "prf_name", "prf_size",
                 "server_hs", "settings", "transcript")

    def __init__(self, conn: Any, settings: Any, server_hs: bytes, prf_name: str,
                 prf_size: int, resuming: bool) -> None:
        self.conn = conn
        self.settings = settings
        self.server_hs = server_hs
        self.prf_name = prf_name
        self.prf_size = prf_size
        self.pos = 0  # bytes of the inbox read (the flight takes them once it is whole)
        self.encrypted_records = 0
        self.ccs = False  # (a middlebox ChangeCipherSpec came first)
        self.handshake = bytearray()  # handshake bytes opened and not yet a whole message
        self.expected = [HandshakeType.encrypted_extensions, HandshakeType.finished] \
            if resuming else [HandshakeType.encrypted_extensions, HandshakeType.certificate,
                              HandshakeType.certificate_verify, HandshakeType.finished]
        self.messages: list[bytes] = []
        self.transcript = conn._handshake_hash.copy()  # (through the server's Finished)
        self.extensions: Any = None  # the parsed EncryptedExtensions
        self.certificate: Any = None
        self.finished: Any = None

    def read(self) -> Any:
        """True once the whole flight is read and sound; ``_WAIT`` if what is there is
        sound and more is needed; None for tlslite's method."""
        layer = self.conn._recordLayer
        handshake = self.handshake
        while True:
            if len(handshake) >= 4:
                size = 4 + int.from_bytes(handshake[1:4], "big")
                if len(handshake) >= size:
                    data = bytes(handshake[:size])
                    del handshake[:size]
                    try:
                        fine = self._take_message(data)
                    except Exception:  # (tlslite's parsers and checks say what is wrong)
                        return None
                    if not fine:
                        return None
                    self.transcript.update(data)
                    if data[0] == HandshakeType.finished:
                        return True
                    continue
            record = layer.read_ahead(self.pos)
            if record is _WAIT:
                break
            if record is None:
                return None
            kind, content, end = record
            if kind == ContentType.change_cipher_spec:
                # the middlebox ChangeCipherSpec, before the protected records only
                if self.encrypted_records or not self.conn._middlebox_compat_mode:
                    return None
                self.ccs = True
            elif kind == ContentType.handshake:
                handshake += content
                self.encrypted_records += 1
            else:
                return None
            self.pos = end
        # the flight is still arriving: what came is sound, and checked where tlslite
        # would check it (the chain at the CertificateVerify), so tlslite would wait too
        return _WAIT

    def _take_message(self, data: bytes) -> bool:
        """Parse and check one message of the flight, in order (raises as tlslite's parsers)."""
        kind = data[0]
        if kind == HandshakeType.compressed_certificate:
            kind = HandshakeType.certificate  # (RFC 8879: in its place, checked below)
        if kind != self.expected[len(self.messages)]:
            return False
        self.messages.append(data)
        parser = _parser_past_type(data)
        conn = self.conn
        if kind == HandshakeType.encrypted_extensions:
            self.extensions = _EncryptedExtensions().parse(parser)
            if not conn._aiotls_extensions_fine(self.settings, self.extensions):
                return False
            # (what tlslite sets as it reads the message: the same again if it reads it)
            size_limit = self.extensions.getExtension(ExtensionType.record_size_limit)
            if size_limit:
                conn._send_record_limit = size_limit.record_size_limit - 1
                conn._recv_record_limit = min(2**14, self.settings.record_size_limit - 1)
            return True
        if kind == HandshakeType.certificate:
            if data[0] == HandshakeType.compressed_certificate:
                self.certificate = BoundedCompressedCertificate(
                    CertificateType.x509, _TLS13).parse(parser)
                algorithm = ALGORITHM_NAMES.get(self.certificate.compression_algo)
                if algorithm not in self.settings.certificate_compression_receive:
                    return False
                conn.server_cert_compression_algo = algorithm  # (as tlslite, as it reads it)
            else:
                self.certificate = _Certificate(CertificateType.x509, _TLS13).parse(parser)
            chain = self.certificate.cert_chain
            return bool(chain and chain.getNumCerts())
        if kind == HandshakeType.certificate_verify:
            verify = _CertificateVerify(_TLS13).parse(parser)
            if not conn._aiotls_verify_server_signature(
                    self.settings, self.certificate, verify, self.transcript, self.prf_name):
                return False
            conn.serverSigAlg = verify.signatureAlgorithm  # (as tlslite, as it reads it)
            return True
        self.finished = _Finished(_TLS13, self.prf_size).parse(parser)
        expected = _crypto.hmac_digest(
            _crypto.hkdf_expand_label(self.server_hs, b"finished", b"", self.prf_size,
                                      self.prf_name),
            self.transcript.digest(self.prf_name), self.prf_name)
        # (and it ends its record, as tlslite requires of a Finished)
        return hmac.compare_digest(bytes(self.finished.verify_data), expected) \
            and not self.handshake


class LeanClient13(_Hooks):  # type: ignore[misc]
    """The TLS 1.3 client after the ServerHello, common case (see the module)."""

    version: Any
    ecdhCurve: Any
    serverSigAlg: Any
    session: Any
    tickets: Any
    extendedMasterSecret: Any
    _middlebox_compat_mode: Any
    _first_handshake_hashes: Any
    _buffer_content_type: Any
    _ccs_sent: Any
    _send_record_limit: Any
    _recv_record_limit: Any
    _aiotls_lean_client: bool
    _aiotls_first_finished: bytes | None

    def _clientTLS13Handshake(self, settings: Any, session: Any, clientHello: Any,
                              clientCertChain: Any, privateKey: Any,
                              serverHello: Any) -> Generator[Any, None, None]:
        keys = self._aiotls_client_keys(settings, session, clientHello, clientCertChain,
                                        serverHello)
        read: Any = None
        if keys is not None:
            # the server's handshake keys, read with from now on, as tlslite installs them
            # first (tlslite's method, if the flight goes there, installs them again)
            self.ecdhCurve = keys[0]
            self._recordLayer.calcTLS1_3PendingState(
                serverHello.cipher_suite, bytearray(keys[2]), bytearray(keys[3]),
                settings.cipherImplementations)
            self._changeReadState()
            flight = _Flight(self, settings, keys[3], *keys[4:])
            while (read := flight.read()) is _WAIT:
                yield 0  # (WANT_READ: the rest of the flight)
        if not read:
            yield from super()._clientTLS13Handshake(settings, session, clientHello,
                                                     clientCertChain, privateKey, serverHello)
            return
        assert keys is not None
        self._aiotls_lean_client = True
        _, secret, client_hs, _, prf_name, prf_size, resuming = keys
        suite = serverHello.cipher_suite
        expand = _crypto.hkdf_expand_label
        mac = _crypto.hmac_digest

        # --- take the flight: its records (opened already), transcript, as tlslite --------
        layer = self._recordLayer
        del layer._recordSocket._inbox()[:flight.pos]
        layer.early_data_ok = False
        if self._aiotls_trace is not None:
            self._aiotls_trace.received_flight(flight.ccs, flight.messages)
        self._handshake_hash = flight.transcript
        if self._aiotls_first_finished is None:
            self._aiotls_first_finished = bytes(flight.finished.verify_data)
        certificate = flight.certificate

        # --- our Finished --------------------------------------------------------------------
        self._changeWriteState()
        transcript = self._handshake_hash
        server_finished_hash = transcript.digest(prf_name)
        secret, client_app, server_app, exporter = application_secrets(
            secret, server_finished_hash, prf_name, prf_size)
        layer.calcTLS1_3PendingState(suite, client_app, server_app,
                                     settings.cipherImplementations)
        self._changeReadState()
        verify_data = mac(expand(client_hs, b"finished", b"", prf_size, prf_name),
                          server_finished_hash, prf_name)
        finished = _Raw(ContentType.handshake, bytes((HandshakeType.finished,))
                        + len(verify_data).to_bytes(3, "big") + verify_data)
        if not self._ccs_sent and clientHello.session_id:
            yield from self._sendMsgs([_CCS, finished])
        else:
            yield from self._sendMsgs([finished])
        self._middlebox_compat_mode = False
        self._changeWriteState()
        self._first_handshake_hashes = transcript.copy()
        resumption = bytearray(expand(secret, b"res master", transcript.digest(prf_name),
                                      prf_size, prf_name))

        # --- the session, as tlslite makes it ------------------------------------------------
        self.session = Session()
        self.extendedMasterSecret = True
        server_name = clientHello.server_name.decode("utf-8") if clientHello.server_name \
            else None
        alpn = flight.extensions.getExtension(ExtensionType.alpn)
        self.session.create(bytearray(secret), bytearray(b""), suite, None, clientCertChain,
                            certificate.cert_chain if certificate else None, None, False,
                            server_name, encryptThenMAC=False, extendedMasterSecret=True,
                            appProto=alpn.protocol_names[0] if alpn else None,
                            cl_app_secret=client_app, sr_app_secret=server_app,
                            exporterMasterSecret=exporter, resumptionMasterSecret=resumption,
                            tickets=self.tickets)
        yield "resumed_and_finished" if resuming else "finished"

    def _aiotls_client_keys(self, settings: Any, session: Any, clientHello: Any,
                            clientCertChain: Any, serverHello: Any) -> tuple[Any, ...] | None:
        """The handshake secrets if this flight may be handled here, computed without
        changing the connection; None sends it to tlslite's method."""
        if not ENABLED or tuple(self.version) != _TLS13 or clientCertChain \
                or settings.pskConfigs or self._buffer_content_type is not None:
            return None
        layer = self._recordLayer
        if not isinstance(layer, _RecordLayer) or layer.has_opened() \
                or not self._defragmenter.is_empty():
            return None
        suite = serverHello.cipher_suite
        if suite not in _SUITES:
            return None
        prf_name, prf_size = self._getPRFParams(suite)
        try:
            server_share = serverHello.getExtension(ExtensionType.key_share)
            selected = serverHello.getExtension(ExtensionType.pre_shared_key)
            if server_share is None:
                return None  # (psk_ke, or nothing chosen: tlslite's method answers)
            server_share = server_share.server_share
            group = server_share.group
            if group not in _FAST_GROUPS and group not in HYBRID_GROUPS:
                return None
            offered = clientHello.getExtension(ExtensionType.key_share)
            ours = next((entry for entry in offered.client_shares if entry.group == group),
                        None)
            if ours is None:
                return None
            shared = self._getKEX(group, self.version).calc_shared_key(
                ours.private, server_share.key_exchange)
            derived = no_psk_derived(prf_name, prf_size)
            resuming = False
            if selected:
                identity = clientHello.getExtension(
                    ExtensionType.pre_shared_key).identities[selected.selected]
                # (the ticket tlslite's calc_res_binder_psk picks)
                ticket = next(i for i in session.tickets if i.ticket == identity.identity)
                derived = ticket_secrets(session, ticket, prf_name, prf_size)[1]
                resuming = True
        except Exception:  # (tlslite's method meets the same problem and reports it)
            return None
        secret, client_hs, server_hs = handshake_secrets(
            derived, shared, self._handshake_hash.digest(prf_name), prf_name, prf_size)
        return group, secret, client_hs, server_hs, prf_name, prf_size, resuming

    def _aiotls_extensions_fine(self, settings: Any, extensions: Any) -> bool:
        """True if tlslite's method and aiotls's checks accept these EncryptedExtensions
        and this path knows every one of them."""
        found = extensions.extensions or []
        if any(ext.extType not in _EE_KNOWN for ext in found):
            return False
        limit = extensions.getExtension(ExtensionType.record_size_limit)
        if limit is not None and (not settings.record_size_limit
                                  or limit.record_size_limit is None
                                  or not 64 <= limit.record_size_limit <= 2**14 + 1):
            return False
        return self._aiotls_alpn_problem(extensions) is None

    def _aiotls_chain_fine(self, settings: Any, chain: Any, public_key: Any,
                           cert_type: str) -> bool:
        """True if tlslite's checks of the server's key against the settings
        (``_check_certchain_with_settings``) and aiotls's verification of the chain pass:
        run here, at the CertificateVerify, where tlslite runs them."""
        if tackpyLoaded:
            return False
        if cert_type == "ecdsa":
            curve = next((name for name, aliases in CURVE_ALIASES.items()
                          if public_key.curve_name in aliases), public_key.curve_name)
            if _CURVE_HASHES.get(curve) not in settings.ecdsaSigHashes:
                return False
        elif cert_type in ("Ed25519", "Ed448"):
            if cert_type not in settings.more_sig_schemes:
                return False
        elif not settings.minKeySize <= len(public_key) <= settings.maxKeySize:
            return False
        policy = self._aiotls_policy
        if policy is not None:
            try:
                policy.verify(_chain_der(chain))
            except CertificateError:
                return False  # (tlslite's method sends the alert, with aiotls's error)
        return True

    def _aiotls_verify_server_signature(self, settings: Any, certificate: Any, verify: Any,
                                        transcript: Any, prf_name: str) -> Any:
        """The server's public key if its CertificateVerify uses a scheme we offered that
        fits its key and the signature verifies; None otherwise."""
        scheme = verify.signatureAlgorithm
        chain = certificate.cert_chain
        if not self._aiotls_scheme_offered(scheme) \
                or not self._aiotls_scheme_fits(settings, scheme, chain):
            return None
        public_key = chain.getEndEntityPublicKey()
        cert_type = chain.x509List[0].certAlg
        if not self._aiotls_chain_fine(settings, chain, public_key, cert_type):
            return None
        # (the scheme's hash, padding and salt as the server's side signs with them;
        # brainpool and anything unknown: tlslite's method)
        params = _signing_params(_SignatureSchemes.toRepr(scheme))
        if params is None:
            return None
        _, hash_name, padding, salt_len, intrinsic = params
        if intrinsic:
            if cert_type not in ("Ed25519", "Ed448"):
                return None
            method = public_key.hashAndVerify
        elif padding is None:  # (ECDSA)
            if cert_type != "ecdsa" \
                    or self._curve_name_to_hash_name(public_key.curve_name) != hash_name:
                return None
            method = public_key.verify
        else:  # (RSA-PSS)
            if cert_type not in ("rsa", "rsa-pss"):
                return None
            method = public_key.verify
        to_verify = _FastKeyExchange.calcVerifyBytes(_TLS13, transcript, scheme, None, None,
                                                     None, prf_name, b"server")
        if not method(verify.signature, to_verify, padding, hash_name, salt_len):
            return None
        return public_key

