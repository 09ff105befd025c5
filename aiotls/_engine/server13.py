"""The TLS 1.3 server's flight in the common case, without tlslite's message objects.

tlslite's ``_serverTLS13Handshake`` builds a Python object per message and per extension,
serialises each through its codec, and walks every branch of the protocol for every
connection.  For the handshake nearly every server makes -- TLS 1.3 chosen, a key share
the server accepts (no HelloRetryRequest), a certificate, no client certificate asked for,
and either no PSK or a resumption ticket with (EC)DHE -- :meth:`LeanServer13._serverTLS13Handshake`
writes the same bytes directly: ServerHello, the optional middlebox ChangeCipherSpec,
EncryptedExtensions, Certificate (serialised once per certificate chain; compressed with
zlib, RFC 8879, once per chain, when the client offers it), CertificateVerify
and Finished, with the same key schedule through :mod:`aiotls._crypto`.  It then reads the
client's Finished straight from the socket when it comes as nearly every client sends it
(tlslite's ``_getMsg`` otherwise), and makes the session and sends tickets through
tlslite's own steps, so the connection is left exactly as tlslite leaves it.

Everything else (a client certificate requested, a HelloRetryRequest behind it, external
PSKs, psk_ke, certificate compression with brotli or zstd, heartbeat, KEM groups other than
X25519MLKEM768, brainpool signatures, speed-ups off) is decided before anything is sent and goes to tlslite's method
unchanged. ``tests/test_server13.py`` and ``test_lean13.py`` check that both produce the
same bytes and the same connection state, handshake by handshake.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
from collections.abc import Generator
from itertools import chain
from typing import Any

from tlslite.constants import AlertDescription as _TLAlert
from tlslite.constants import (
    CertificateCompressionAlgorithm,
    ContentType,
    ExtensionType,
    GroupName,
    HandshakeType,
    HashAlgorithm,
    PskKeyExchangeMode,
    SignatureAlgorithm,
    SignatureScheme,
)
from tlslite.errors import TLSIllegalParameterException
from tlslite.extensions import PreSharedKeyExtension
from tlslite.session import Session
from tlslite.utils.cryptomath import getRandomBytes

from .. import _crypto
from . import speedups
from .base import _FastKeyExchange
from .certcompress import compressed_certificate_message, compression_choice
from .common import _Hooks
from .hybrid import HYBRID_GROUPS
from .rebind import _EMPTY_HASH, _fast_derive_secret
from .records import WAIT as _WAIT
from .records import _RecordLayer

#: Switched off by tests to run tlslite's method for the same handshake.
ENABLED = speedups.ENABLED

#: Where the server random comes from (a seam for the byte-for-byte tests).
_random_bytes = getRandomBytes

_TLS13 = (3, 4)
_PSK_DHE = PskKeyExchangeMode.psk_dhe_ke

#: Extensions whose presence in the ClientHello changes what tlslite answers in ways this
#: path does not reproduce (see the module docstring); the ClientHello goes to tlslite.
_NOT_HERE = (ExtensionType.cookie,)
_ZLIB = CertificateCompressionAlgorithm.zlib


class _Raw:
    """A message already serialised, for tlslite's ``_sendMsgs``."""

    __slots__ = ("_serialised", "contentType")

    def __init__(self, content_type: int, data: bytes) -> None:
        self.contentType = content_type
        self._serialised = data

    def write(self) -> bytes:
        return self._serialised


_CCS = _Raw(ContentType.change_cipher_spec, b"\x01")

#: scheme name -> (code point, hash name, padding, salt length, intrinsic) as tlslite
#: derives them in ``_serverTLS13Handshake``; brainpool schemes are not here.
_SCHEMES: dict[str, tuple[tuple[int, int], str, str | None, int | None, bool]] = {}


def _signing_params(name: str | None,
                    ) -> tuple[tuple[int, int], str, str | None, int | None, bool] | None:
    if not name:
        return None  # (no scheme chosen: a ClientHello without signature_algorithms)
    found = _SCHEMES.get(name)
    if found is not None:
        return found
    code = getattr(SignatureScheme, name, None)
    if code is None:
        return None
    if code in (SignatureScheme.ed25519, SignatureScheme.ed448):
        found = (code, "intrinsic", None, None, True)
    elif code[1] == SignatureAlgorithm.ecdsa:
        found = (code, HashAlgorithm.toRepr(code[0]), None, None, False)
    elif name.startswith("rsa_pss_"):
        hash_name = SignatureScheme.getHash(name)
        found = (code, hash_name, SignatureScheme.getPadding(name),
                 hashlib.new(hash_name).digest_size, False)
    else:
        return None  # (brainpool and anything newer: tlslite's method)
    _SCHEMES[name] = found
    return found


# --- the TLS 1.3 key schedule (RFC 8446 7.1), for this flight and client13.py's -------------


def early_secrets(psk: bytes | bytearray, prf_name: str, prf_size: int,
                  binder_label: bytes = b"res binder") -> tuple[bytes, bytes]:
    """(binder finished key, the handshake's ``derived`` secret) from RFC 8446 7.1's early
    secret of ``psk``: what a PSK's binder and the handshake secrets need from it."""
    empty = _EMPTY_HASH[prf_name]
    early = _crypto.hmac_digest(bytes(prf_size), psk, prf_name)
    binder_key, derived = _crypto.hkdf_expand_labels(
        early, ((binder_label, empty, prf_size), (b"derived", empty, prf_size)), prf_name)
    return _crypto.hkdf_expand_label(binder_key, b"finished", b"", prf_size, prf_name), derived


@functools.lru_cache(maxsize=4)
def no_psk_derived(prf_name: str, prf_size: int) -> bytes:
    """The handshake's ``derived`` secret when there is no PSK (zeros): a constant."""
    return early_secrets(bytes(prf_size), prf_name, prf_size)[1]


def _verify_binder(hello: Any, hashes: Any, position: int, binder_key: bytes,
                   prf_name: str) -> None:
    """tlslite's ``HandshakeHelpers.verify_binder`` (the same checks and errors), given the
    binder's finished key (:func:`early_secrets`)."""
    ext = hello.extensions[-1]
    if not isinstance(ext, PreSharedKeyExtension):
        raise TLSIllegalParameterException(
            "Last extension in client_hello must be PreSharedKeyExtension")
    transcript = hashes.copy()
    transcript.update(hello.psk_truncate())
    binder = _crypto.hmac_digest(binder_key, transcript.digest(prf_name), prf_name)
    if not hmac.compare_digest(binder, bytes(ext.binders[position])):
        raise TLSIllegalParameterException("Binder does not verify")


def handshake_secrets(derived: bytes, shared_secret: bytes, hello_hash: bytes, prf_name: str,
                      prf_size: int) -> tuple[bytes, bytes, bytes]:
    """(handshake secret, client and server handshake traffic secrets) from the early
    secret's ``derived`` secret (:func:`early_secrets`, :func:`no_psk_derived`), the
    (EC)DHE shared secret and the transcript hash through the ServerHello."""
    secret = _crypto.hmac_digest(derived, shared_secret, prf_name)
    client, server = _crypto.hkdf_expand_labels(
        secret, ((b"c hs traffic", hello_hash, prf_size),
                 (b"s hs traffic", hello_hash, prf_size)), prf_name)
    return secret, client, server


def application_secrets(handshake_secret: bytes, flight_hash: bytes, prf_name: str,
                        prf_size: int) -> tuple[bytes, bytearray, bytearray, bytearray]:
    """(master secret, client and server application traffic secrets, exporter master
    secret) from the handshake secret and the transcript hash through the server's
    Finished."""
    secret = _crypto.hmac_digest(_fast_derive_secret(handshake_secret, b"derived", None,
                                                     prf_name), bytes(prf_size), prf_name)
    client, server, exporter = _crypto.hkdf_expand_labels(
        secret, ((b"c ap traffic", flight_hash, prf_size),
                 (b"s ap traffic", flight_hash, prf_size),
                 (b"exp master", flight_hash, prf_size)), prf_name)
    return secret, bytearray(client), bytearray(server), bytearray(exporter)


def _u16(n: int) -> bytes:
    return n.to_bytes(2, "big")


def _u24(n: int) -> bytes:
    return n.to_bytes(3, "big")


def _handshake_message(kind: int, body: bytes) -> bytes:
    return bytes((kind,)) + _u24(len(body)) + body


def certificate_message(cert_chain: Any) -> bytes:
    """The TLS 1.3 Certificate message of a chain (empty request context, no extensions
    on the entries), made once per chain object."""
    cached: bytes | None = getattr(cert_chain, "_aiotls_tls13_certificate", None)
    if cached is None:
        entries = b"".join(_u24(len(der)) + der + b"\x00\x00"
                           for der in (bytes(x509.writeBytes()) for x509 in cert_chain.x509List))
        cached = _handshake_message(HandshakeType.certificate, b"\x00" + _u24(len(entries)) + entries)
        cert_chain._aiotls_tls13_certificate = cached
    return cached


def _extension_bytes(kind: int, data: bytes) -> bytes:
    return _u16(kind) + _u16(len(data)) + data


class LeanServer13(_Hooks):  # type: ignore[misc]
    """The TLS 1.3 server handshake after the ClientHello, common case (see the module)."""

    # tlslite's connection state that the flight sets (declared for the type checker)
    version: Any
    ecdhCurve: Any
    serverSigAlg: Any
    session: Any
    extendedMasterSecret: Any
    _middlebox_compat_mode: Any
    _first_handshake_hashes: Any
    _buffer_content_type: Any
    _buffer: Any
    _aiotls_lean: bool
    _aiotls_sent_certificate: bool
    server_cert_compression_algo: Any
    _aiotls_first_finished: bytes | None

    def _serverTLS13Handshake(self, settings: Any, clientHello: Any, cipherSuite: int,
                              privateKey: Any, serverCertChain: Any, version: Any,
                              scheme: str, srv_alpns: Any,
                              reqCert: bool) -> Generator[Any, None, None]:
        plan = self._aiotls_lean_plan(settings, clientHello, privateKey, serverCertChain,
                                      version, scheme, reqCert)
        if plan is None:
            yield from super()._serverTLS13Handshake(
                settings, clientHello, cipherSuite, privateKey, serverCertChain, version,
                scheme, srv_alpns, reqCert)
            return
        self._aiotls_lean = True
        cl_key_share, selected_group, signing = plan
        prf_name, prf_size = self._getPRFParams(cipherSuite)
        get = clientHello.getExtension

        # --- PSK: a resumption ticket, exactly as tlslite picks and checks it -------------
        derived = no_psk_derived(prf_name, prf_size)
        selected_psk: int | None = None
        resumed_client_cert_chain = None
        psks = get(ExtensionType.pre_shared_key)
        if psks and settings.ticketKeys:
            for i, ident in enumerate(psks.identities):
                match, ticket = self._tryDecrypt(settings, ident)
                if not match:
                    continue
                if ticket and self.version != ticket.protocol_version:
                    continue
                psk_hash = match[2] if len(match) > 2 else "sha256"
                if psk_hash != prf_name:
                    continue
                selected_psk = i
                if ticket:
                    resumed_client_cert_chain = ticket.client_cert_chain
                binder_key, derived = early_secrets(match[1], prf_name, prf_size)
                try:
                    _verify_binder(clientHello, self._pre_client_hello_handshake_hash,
                                   selected_psk, binder_key, prf_name)
                except TLSIllegalParameterException as exc:
                    yield from self._sendError(_TLAlert.illegal_parameter, str(exc))
                break

        # --- (EC)DHE ------------------------------------------------------------------------
        self.ecdhCurve = selected_group
        kex = self._getKEX(selected_group, version)
        try:
            if selected_group in HYBRID_GROUPS:  # (a KEM: the server encapsulates)
                shared_secret, share_value = kex.encapsulate_key(cl_key_share.key_exchange)
            else:
                key_share = self._genKeyShareEntry(selected_group, version)
                share_value = key_share.key_exchange
                shared_secret = kex.calc_shared_key(key_share.private,
                                                    cl_key_share.key_exchange)
        except TLSIllegalParameterException as exc:
            yield from self._sendError(_TLAlert.illegal_parameter, str(exc))

        # --- ServerHello (and the middlebox ChangeCipherSpec) -----------------------------
        share = bytes(share_value)
        extensions = (_extension_bytes(ExtensionType.key_share,
                                 _u16(selected_group) + _u16(len(share)) + share)
                      + _extension_bytes(ExtensionType.supported_versions, b"\x03\x04"))
        if selected_psk is not None:
            extensions += _extension_bytes(ExtensionType.pre_shared_key, _u16(selected_psk))
        session_id = bytes(clientHello.session_id)
        server_hello = _handshake_message(
            HandshakeType.server_hello,
            b"\x03\x03" + bytes(_random_bytes(32)) + bytes((len(session_id),)) + session_id
            + _u16(cipherSuite) + b"\x00" + _u16(len(extensions)) + extensions)
        flight = [_Raw(ContentType.handshake, server_hello)]
        if not self._ccs_sent and session_id:
            flight.append(_CCS)
        yield from self._sendMsgs(flight)

        # --- handshake secrets, keys ---------------------------------------------------------
        expand = _crypto.hkdf_expand_label
        mac = _crypto.hmac_digest
        transcript = self._handshake_hash
        secret, client_hs, server_hs = handshake_secrets(
            derived, shared_secret, transcript.digest(prf_name), prf_name, prf_size)
        self.version = version
        self._recordLayer.calcTLS1_3PendingState(
            cipherSuite, bytearray(client_hs), bytearray(server_hs),
            settings.cipherImplementations)
        self._changeWriteState()

        # --- EncryptedExtensions, Certificate, CertificateVerify, Finished -----------------
        app_proto = None
        alpn = get(ExtensionType.alpn)
        ee_extensions = b""
        if get(ExtensionType.record_size_limit) and settings.record_size_limit:
            ee_extensions = _extension_bytes(ExtensionType.record_size_limit,
                                       _u16(min(2**14 + 1, settings.record_size_limit)))
        if alpn:
            matched = [name for name in alpn.protocol_names if name in srv_alpns]
            if matched:
                app_proto = matched[0]
                name = bytes(app_proto)
                ee_extensions += _extension_bytes(ExtensionType.alpn, _u16(len(name) + 1)
                                           + bytes((len(name),)) + name)
        self._aiotls_queue(_handshake_message(HandshakeType.encrypted_extensions,
                                    _u16(len(ee_extensions)) + ee_extensions))
        if selected_psk is None:
            self._aiotls_sent_certificate = True
            message = certificate_message(serverCertChain)
            compress = get(ExtensionType.compress_certificate)
            if compress is not None:
                # RFC 8879: zlib, the one algorithm this path is given (_aiotls_lean_plan)
                algorithm = compression_choice(compress.algorithms,
                                               settings.certificate_compression_send)
                if algorithm is not None:
                    self.server_cert_compression_algo = "zlib"
                    message = compressed_certificate_message(message, algorithm,
                                                             serverCertChain)
            self._aiotls_queue(message)
            code, hash_name, padding, salt_len, intrinsic = signing
            self.serverSigAlg = code
            to_sign = _FastKeyExchange.calcVerifyBytes(
                _TLS13, transcript, code, None, None, None, prf_name, b"server")
            if intrinsic:
                signature = privateKey.hashAndSign(to_sign, padding, hash_name, salt_len)
                valid = privateKey.hashAndVerify(signature, to_sign, padding, hash_name,
                                                 salt_len)
            else:
                signature = privateKey.sign(to_sign, padding, hash_name, salt_len)
                valid = privateKey.verify(signature, to_sign, padding, hash_name, salt_len)
            if not valid:
                yield from self._sendError(_TLAlert.internal_error,
                                           "Certificate Verify signature failed")
            signature = bytes(signature)
            self._aiotls_queue(_handshake_message(HandshakeType.certificate_verify,
                                        bytes(code) + _u16(len(signature)) + signature))
        verify_data = mac(expand(server_hs, b"finished", b"", prf_size, prf_name),
                          transcript.digest(prf_name), prf_name)
        self._aiotls_queue(_handshake_message(HandshakeType.finished, verify_data))
        yield from self._queue_flush()
        self._changeReadState()

        # --- application traffic secrets ----------------------------------------------------
        flight_hash = transcript.digest(prf_name)
        secret, client_app, server_app, exporter = application_secrets(
            secret, flight_hash, prf_name, prf_size)
        self._recordLayer.calcTLS1_3PendingState(cipherSuite, client_app, server_app,
                                                 settings.cipherImplementations)
        self._changeWriteState()

        # --- the client's Finished (over the same transcript: nothing was added since) ----
        expected = mac(expand(client_hs, b"finished", b"", prf_size, prf_name), flight_hash,
                       prf_name)
        while (client_verify := self._aiotls_client_finished(prf_size)) is _WAIT:
            yield 0  # (WANT_READ)
        if client_verify is None:  # (anything else: tlslite's reading, its checks and alerts)
            result: Any = None
            for result in self._getMsg(ContentType.handshake, HandshakeType.finished,
                                       prf_size):
                if result in (0, 1):
                    yield result
                else:
                    break
            client_verify = bytes(result.verify_data)
        if not hmac.compare_digest(client_verify, expected):
            yield from self._sendError(_TLAlert.decrypt_error, "Finished value is not valid")
        self._middlebox_compat_mode = False
        resumption = bytearray(expand(secret, b"res master", transcript.digest(prf_name),
                                      prf_size, prf_name))
        self._first_handshake_hashes = transcript.copy()

        # --- the session, as tlslite makes it -----------------------------------------------
        self.session = Session()
        self.extendedMasterSecret = True
        server_name = clientHello.server_name.decode("utf-8") if clientHello.server_name \
            else None
        self.session.create(bytearray(secret), bytearray(b""), cipherSuite, bytearray(b""),
                            resumed_client_cert_chain, serverCertChain, None, False,
                            server_name, encryptThenMAC=False, extendedMasterSecret=True,
                            appProto=app_proto, cl_app_secret=client_app,
                            sr_app_secret=server_app, exporterMasterSecret=exporter,
                            resumptionMasterSecret=resumption, tickets=self.tickets)
        self._changeReadState()
        yield from self._serverSendTickets(settings)
        yield "finished"

    def _aiotls_client_finished(self, prf_size: int) -> Any:
        """The client's Finished (its verify_data), read straight from the socket when it
        is what nearly every client sends: an optional middlebox ChangeCipherSpec, then one
        protected record holding exactly the Finished.  ``_WAIT`` while that is still
        arriving; None (nothing consumed) for anything else, which ``_getMsg`` reads."""
        layer = self._recordLayer
        if not isinstance(layer, _RecordLayer) or layer.has_opened() or layer.early_data_ok \
                or not self._defragmenter.is_empty() or layer.records._read is None:
            return None
        record = layer.read_ahead(0)
        if record is _WAIT or record is None:
            return record
        kind, message, end = record
        ccs = kind == ContentType.change_cipher_spec
        if ccs:
            if not self._middlebox_compat_mode:
                return None
            record = layer.read_ahead(end)
            if record is _WAIT or record is None:
                return record
            kind, message, end = record
            if kind == ContentType.change_cipher_spec:
                return None  # (a second one: tlslite's reading)
        if kind != ContentType.handshake or len(message) != 4 + prf_size \
                or message[:4] != bytes((HandshakeType.finished,)) + _u24(prf_size):
            layer.records._read.seq -= 1  # (as it was: tlslite's reading opens it again)
            return None
        del layer._recordSocket._inbox()[:end]
        layer.early_data_ok = False
        self._handshake_hash.update(message)
        if self._aiotls_trace is not None:
            self._aiotls_trace.received_flight(ccs, [message])
        verify_data = message[4:]
        if self._aiotls_first_finished is None:
            self._aiotls_first_finished = verify_data
        return verify_data

    def _aiotls_queue(self, message: bytes) -> None:
        """tlslite's ``_queue_message`` for a serialised handshake message."""
        if self._buffer_content_type is None:
            self._buffer_content_type = ContentType.handshake
        self._buffer += message
        self._handshake_hash.update(message)

    def _aiotls_lean_plan(self, settings: Any, clientHello: Any, privateKey: Any,
                          serverCertChain: Any, version: Any, scheme: str,
                          reqCert: bool) -> tuple[Any, int, Any] | None:
        """(client key share, group, signature parameters) if this handshake is one
        :meth:`_serverTLS13Handshake` writes itself; None sends it to tlslite's method."""
        if not ENABLED or tuple(version) != _TLS13 or reqCert or privateKey is None \
                or not serverCertChain or settings.pskConfigs or self._buffer_content_type \
                is not None:
            return None
        get = clientHello.getExtension
        for kind in _NOT_HERE:
            if get(kind) is not None:
                return None
        compress = get(ExtensionType.compress_certificate)
        if compress is not None and (not compress.algorithms or compression_choice(
                compress.algorithms, settings.certificate_compression_send) not in (None, _ZLIB)):
            return None  # (an empty list is tlslite's decode_error; brotli, zstd: its code)
        if settings.use_heartbeat_extension and get(ExtensionType.heartbeat) is not None:
            return None
        psks = get(ExtensionType.pre_shared_key)
        if psks is not None:
            modes = get(ExtensionType.psk_key_exchange_modes)
            # (psk_ke only, or a server without psk_dhe_ke: tlslite's method)
            if modes is None or _PSK_DHE not in modes.modes \
                    or "psk_dhe_ke" not in settings.psk_modes:
                return None
        signing = _signing_params(scheme)
        if signing is None:
            return None
        share = get(ExtensionType.key_share)
        if not share:
            return None
        offered = {entry.group: entry for entry in share.client_shares}
        for name in chain(settings.keyShares, settings.eccCurves, settings.dhGroups):
            group = getattr(GroupName, name)
            if group in offered:
                if group in GroupName.allKEM and group not in HYBRID_GROUPS:
                    return None
                return offered[group], group, signing
        return None
