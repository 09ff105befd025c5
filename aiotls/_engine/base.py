"""The tlslite connection class the engine's mixins extend: tlslite's methods rebound.

:func:`_rebound_base` makes a subclass of tlslite's ``TLSConnection`` whose handshake
methods (:data:`_REBOUND_METHODS`) are tlslite's code objects run with the faster helpers
of :mod:`.rebind` and the quick message classes of :mod:`.quick`; the client's own
ClientHello advertises what aiotls verifies in certificates (:data:`_ClientHelloToSend`).
"""

from __future__ import annotations

from typing import Any

from tlslite import TLSConnection as _TLSLiteBase
from tlslite import handshakehelpers as _tl_handshakehelpers
from tlslite import keyexchange as _tl_keyexchange
from tlslite import tlsconnection as _tl_tlsconnection
from tlslite import tlsrecordlayer as _tl_tlsrecordlayer
from tlslite.handshakehelpers import HandshakeHelpers
from tlslite.keyexchange import KeyExchange

from . import speedups
from .certcompress import BoundedCompressedCertificate
from .quick import _MESSAGE_PARSING_METHODS, _QUICK_EXTENSIONS, _QUICK_MESSAGES, _QuickTLSExtension
from .rebind import _namespace, _rebind
from .verification import _advertise_certificate_signatures


class _FastHandshakeHelpers(HandshakeHelpers):  # type: ignore[misc]
    """tlslite's HandshakeHelpers (PSK binders) with the faster helpers."""


def _no_padding(clientHello: Any) -> None:
    # RFC 7685 padding works around 2013-era F5 middleboxes; OpenSSL does not pad by
    # default either, and computing it costs a full extra ClientHello serialisation.
    return


if speedups.ENABLED:
    _FastHandshakeHelpers.alignClientHelloPadding = staticmethod(_no_padding)


_HELPERS_NS = _namespace(_tl_handshakehelpers, HandshakeHelpers=_FastHandshakeHelpers)
for _name in ("_calc_binder", "calc_res_binder_psk", "update_binders", "verify_binder"):
    setattr(_FastHandshakeHelpers, _name, _rebind(vars(HandshakeHelpers)[_name], _HELPERS_NS))

class _FastKeyExchange(KeyExchange):  # type: ignore[misc]
    """tlslite's KeyExchange whose TLS 1.3 CertificateVerify helpers look the signature
    scheme up in the remembered enums (tlslite scans every class attribute of
    SignatureScheme, twice per CertificateVerify made or checked)."""


_KEX_NS = _namespace(_tl_keyexchange, KeyExchange=_FastKeyExchange)
for _name in ("calcVerifyBytes", "makeCertificateVerify"):
    setattr(_FastKeyExchange, _name, _rebind(vars(KeyExchange)[_name], _KEX_NS))


#: Which tlslite methods run with the faster helpers: every method that uses them, except
#: SRP (not offered by aiotls), ``_getKEX`` (replaced outright below) and TLSRecordLayer's
#: ``__init__`` (its transcript object is replaced by ``_handshakeStart``).
_REBOUND_METHODS = {
    _tl_tlsconnection: (
        "_handshakeClientAsyncHelper", "_clientSendClientHello", "_clientGetServerHello",
        "_getPRFParams", "_clientTLS13Handshake", "_clientKeyExchange",
        "_handshakeServerAsyncHelper", "_derive_key_iv", "_tryDecrypt",
        "_serverTLS13Handshake", "_serverGetClientHello", "_server_select_certificate",
        "keyingMaterialExporter", "_sigHashesToList", "_serverCertKeyExchange",
        "_pickServerKeyExchangeSig", "_curveNamesToList", "_groupNamesToList",
        "request_post_handshake_auth",
    ),
    _tl_tlsrecordlayer: ("_handle_pha", "_handle_srv_pha", "_handshakeStart", "_getNextRecord"),
}


def _client_hello_to_send() -> type:
    quick = _QUICK_MESSAGES["ClientHello"]

    def create(self: Any, *args: Any, **kwargs: Any) -> Any:
        quick.create(self, *args, **kwargs)
        _advertise_certificate_signatures(self, cert_extension=False)
        return self

    return type(quick.__name__, (quick,), {"__module__": quick.__module__, "create": create})


#: The client's own ClientHello: the quick class, plus rsa_pkcs1_* for certificates (see
#: _advertise_certificate_signatures) added as it is created, before any PSK binder.
_ClientHelloToSend = _client_hello_to_send()


def _rebound_base() -> type:
    quick_ext: dict[str, Any] = {name: cls for name, cls in _QUICK_EXTENSIONS.items()
                                 if name in vars(_tl_tlsconnection)}
    quick_ext["TLSExtension"] = _QuickTLSExtension
    if not speedups.ENABLED:
        quick_ext = {}  # tlslite's own extension classes
    namespaces = {
        # (the client's own ClientHello is built from a subclass of the quick class: tlslite's
        # TLSConnection never tests isinstance() against it)
        _tl_tlsconnection: _namespace(_tl_tlsconnection, HandshakeHelpers=_FastHandshakeHelpers,
                                      KeyExchange=_FastKeyExchange,
                                      ClientHello=_ClientHelloToSend, **quick_ext),
        _tl_tlsrecordlayer: _namespace(_tl_tlsrecordlayer, KeyExchange=_FastKeyExchange),
    }
    attrs: dict[str, Any] = {}
    for module, names in _REBOUND_METHODS.items():
        owner = (_tl_tlsconnection.TLSConnection if module is _tl_tlsconnection
                 else _tl_tlsrecordlayer.TLSRecordLayer)
        for name in names:
            attrs[name] = _rebind(vars(owner)[name], namespaces[module])
    parsing = _namespace(_tl_tlsrecordlayer, **{name: cls for name, cls in _QUICK_MESSAGES.items()
                                                 if name in vars(_tl_tlsrecordlayer)})
    # not a speed-up: a received compressed certificate is decompressed within limits
    parsing["CompressedCertificate"] = BoundedCompressedCertificate
    for name in _MESSAGE_PARSING_METHODS:
        attrs[name] = _rebind(vars(_tl_tlsrecordlayer.TLSRecordLayer)[name], parsing)
    return type("_ReboundTLSConnection", (_TLSLiteBase,), attrs)


_ReboundTLSConnection: Any = _rebound_base()

