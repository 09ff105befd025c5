"""Every private name of tlslite-ng that aiotls relies on, in one place.

aiotls overrides, calls and reads tlslite-ng internals (the version is pinned in
``pyproject.toml``).  This registry lists each of them: methods and static methods with
the signature aiotls was written against, properties, class attributes, the attributes a
fresh connection, record layer and socket wrapper must have, the module globals that
:mod:`.rebind` replaces, and the methods it rebinds.  :func:`check` compares the installed
tlslite-ng with the registry and returns one line per difference;
``tests/test_engine_registry.py`` fails with those lines, so a tlslite-ng upgrade that
moves something fails there, in one place, saying what moved.
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any

#: tlslite callable -> the signature aiotls's overrides and calls expect.
SIGNATURES: dict[str, str] = {
    # verification's override: a TLS 1.3 client compresses only as the server asked
    "tlslite.tlsrecordlayer.TLSRecordLayer._create_cert_msg":
        "(self, peer, request_msg, valid_compression_algos, cert_chain, cert_type, "
        "cert_context=b'', version=(3, 2))",
    # certcompress.BoundedCompressedCertificate bounds the decompression
    "tlslite.messages.CompressedCertificate._decompress": "(self, compressed_msg, expected_length)",
    # tlslite.tlsconnection.TLSConnection: the handshake steps aiotls's mixins override
    "tlslite.tlsconnection.TLSConnection._check_certchain_with_settings":
        "(self, cert_chain, settings)",
    "tlslite.tlsconnection.TLSConnection._clientGetKeyFromChain":
        "(self, certificate, settings, tack_ext=None)",
    "tlslite.tlsconnection.TLSConnection._clientGetServerHello":
        "(self, settings, session, clientHello)",
    "tlslite.tlsconnection.TLSConnection._clientKeyExchange":
        "(self, settings, cipherSuite, clientCertChain, privateKey, certificateType, tackExt, "
        "clientRandom, serverRandom, keyExchange)",
    "tlslite.tlsconnection.TLSConnection._clientResume":
        "(self, session, serverHello, clientRandom, nextProto, settings)",
    "tlslite.tlsconnection.TLSConnection._clientSendClientHello":
        "(self, settings, session, srpUsername, srpParams, certParams, anonParams, serverName, "
        "nextProtos, reqTack, alpn)",
    "tlslite.tlsconnection.TLSConnection._curveNamesToList": "(settings, version=(3, 4))",
    "tlslite.tlsconnection.TLSConnection._getKEX": "(group, version)",
    "tlslite.tlsconnection.TLSConnection._genKeyShareEntry": "(cls, group, version)",
    "tlslite.tlsconnection.TLSConnection._getPRFParams": "(cipher_suite)",
    "tlslite.tlsconnection.TLSConnection._groupNamesToList": "(settings)",
    "tlslite.tlsconnection.TLSConnection._pickServerKeyExchangeSig":
        "(settings, clientHello, certList=None, private_key=None, version=(3, 3), "
        "check_alt=True)",
    "tlslite.tlsconnection.TLSConnection._serverCertKeyExchange":
        "(self, clientHello, serverHello, sigHashAlg, serverCertChain, keyExchange, reqCert, "
        "reqCAs, cipherSuite, settings)",
    "tlslite.tlsconnection.TLSConnection._serverFinished":
        "(self, premasterSecret, clientRandom, serverRandom, cipherSuite, "
        "cipherImplementations, nextProtos, settings, send_session_ticket=False, "
        "client_cert_chain=None)",
    "tlslite.tlsconnection.TLSConnection._serverGetClientHello":
        "(self, settings, private_key, cert_chain, verifierDB, sessionCache, anon, alpn, sni)",
    "tlslite.tlsconnection.TLSConnection._serverSendTickets": "(self, settings)",
    "tlslite.tlsconnection.TLSConnection._serverTLS13Handshake":
        "(self, settings, clientHello, cipherSuite, privateKey, serverCertChain, version, "
        "scheme, srv_alpns, reqCert)",
    # (the server's choices once the ClientHello is read, sni.py; the client's chosen
    # certificate, client_cert.py)
    "tlslite.tlsconnection.TLSConnection._handshakeServerAsyncHelper":
        "(self, verifierDB, cert_chain, privateKey, reqCert, sessionCache, settings, reqCAs, "
        "tacks, activationFlags, nextProtos, anon, alpn, sni)",
    "tlslite.tlsconnection.TLSConnection._handshakeClientAsyncHelper":
        "(self, srpParams, certParams, anonParams, session, settings, serverName, nextProtos, "
        "reqTack, alpn)",
    "tlslite.tlsrecordlayer.TLSRecordLayer._handshakeStart": "(self, client)",
    "tlslite.tlsconnection.TLSConnection._server_select_certificate":
        "(self, settings, client_hello, cipher_suites, cert_chain, private_key, version)",
    "tlslite.tlsconnection.TLSConnection._sigHashesToList":
        "(settings, privateKey=None, certList=None, version=(3, 3))",
    # (the TLS 1.3 client's handling of the server flight in client13.py)
    "tlslite.tlsconnection.TLSConnection._clientTLS13Handshake":
        "(self, settings, session, clientHello, clientCertChain, privateKey, serverHello)",
    "tlslite.tlsconnection.TLSConnection._curve_name_to_hash_name": "(curve_name)",
    "tlslite.tlsconnection.TLSConnection._tryDecrypt":
        "(self, settings, identity=None, ticket=None)",
    # tlslite.tlsrecordlayer.TLSRecordLayer: message I/O and post-handshake authentication
    "tlslite.tlsrecordlayer.TLSRecordLayer._getMsg":
        "(self, expectedType, secondaryType=None, constructorType=None)",
    "tlslite.tlsrecordlayer.TLSRecordLayer._getNextRecordFromSocket": "(self)",
    "tlslite.tlsrecordlayer.TLSRecordLayer._handle_srv_pha": "(self, cert)",
    "tlslite.tlsrecordlayer.TLSRecordLayer._queue_flush": "(self)",
    # (the TLS 1.3 server flight of server13.py: tlslite's own sending and key switching)
    "tlslite.tlsrecordlayer.TLSRecordLayer._sendMsgs": "(self, msgs)",
    "tlslite.tlsrecordlayer.TLSRecordLayer._changeWriteState": "(self)",
    "tlslite.tlsrecordlayer.TLSRecordLayer._handshakeDone": "(self, resumed)",
    "tlslite.tlsrecordlayer.TLSRecordLayer._changeReadState": "(self)",
    "tlslite.tlsrecordlayer.TLSRecordLayer._queue_message": "(self, msg)",
    "tlslite.tlsrecordlayer.TLSRecordLayer._sendError":
        "(self, alertDescription, errorStr=None)",
    "tlslite.tlsrecordlayer.TLSRecordLayer._sendMsg":
        "(self, msg, randomizeFirstBlock=True, update_hashes=True)",
    "tlslite.tlsrecordlayer.TLSRecordLayer._shutdown": "(self, resumable)",
    # tlslite.recordlayer: the record layer aiotls's seals and opens for
    "tlslite.recordlayer.RecordLayer._getCipherSettings": "(cipherSuite)",
    "tlslite.recordlayer.RecordLayer._get_pending_state_etm": "(self)",
    "tlslite.recordlayer.RecordLayer._is_tls13_plus": "(self)",
    "tlslite.recordlayer.RecordLayer.calcTLS1_3PendingState":
        "(self, cipherSuite, cl_traffic_secret, sr_traffic_secret, implementations)",
    "tlslite.recordlayer.RecordLayer.recvRecord": "(self)",
    "tlslite.recordlayer.RecordLayer.sendRecord": "(self, msg)",
    "tlslite.recordlayer.RecordSocket.recv": "(self)",
    "tlslite.recordlayer.RecordSocket.send": "(self, msg, padding=0)",
    # key objects aiotls backs with OpenSSL (accel.py)
    "tlslite.utils.python_ecdsakey.Python_ECDSAKey._sign": "(self, data, hAlg)",
    "tlslite.utils.python_ecdsakey.Python_ECDSAKey._hashAndSign": "(self, data, hAlg)",
    "tlslite.utils.python_ecdsakey.Python_ECDSAKey._verify": "(self, signature, hash_bytes)",
    "tlslite.utils.python_eddsakey.Python_EdDSAKey._hashAndSign": "(self, data)",
    "tlslite.utils.python_eddsakey.Python_EdDSAKey._hashAndVerify": "(self, signature, data)",
    "tlslite.constants.CipherSuite._filterSuites": "(suites, settings, version=None)",
    # messages
    "tlslite.messages.ClientHello._write": "(self)",
    # the PSK binder of the client's ClientHello (client_hello.py, as update_binders)
    "tlslite.handshakehelpers.HandshakeHelpers._calc_binder":
        "(prf, psk, handshake_hash, external=True)",
    "tlslite.handshakehelpers.HandshakeHelpers.calc_res_binder_psk":
        "(iden, res_master_secret, tickets)",
    # CertificateVerify helpers run with the remembered enums (base._FastKeyExchange)
    "tlslite.keyexchange.KeyExchange.calcVerifyBytes":
        "(version, handshakeHashes, signatureAlg, premasterSecret, clientRandom, "
        "serverRandom, prf_name=None, peer_tag=b'client', key_type='rsa')",
    "tlslite.keyexchange.KeyExchange.makeCertificateVerify":
        "(version, handshakeHashes, validSigAlgs, privateKey, certificateRequest, "
        "premasterSecret, clientRandom, serverRandom)",
}

#: tlslite properties aiotls reads or sets.
PROPERTIES: tuple[str, ...] = (
    "tlslite.tlsrecordlayer.TLSRecordLayer._client",
    "tlslite.tlsrecordlayer.TLSRecordLayer._send_record_limit",
    "tlslite.tlsrecordlayer.TLSRecordLayer.version",
    "tlslite.recordlayer.RecordLayer.version",
    "tlslite.recordlayer.RecordLayer.recv_record_limit",
)

#: tlslite class attributes aiotls reads.
CLASS_ATTRIBUTES: tuple[str, ...] = (
    "tlslite.utils.rsakey.RSAKey._pkcs1Prefixes",
    "tlslite.extensions.TLSExtension._universalExtensions",
    "tlslite.extensions.TLSExtension._serverExtensions",
    "tlslite.extensions.TLSExtension._certificateExtensions",
    "tlslite.extensions.TLSExtension._hrrExtensions",
)

#: Attributes a fresh tlslite connection (over a socket) must have, by object:
#: ``connection`` (TLSConnection), ``record_layer`` (its RecordLayer), ``sock`` (its
#: BufferedSocket), ``defragmenter`` (its Defragmenter).
INSTANCE_ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "connection": ("_recordLayer", "_defragmenter", "_handshake_hash", "_pha_supported",
                   "_peer_record_size_limit", "sock", "session", "version", "closed",
                   "resumed", "tickets", "ecdhCurve", "serverSigAlg", "closeSocket",
                   "client_cert_required", "extendedMasterSecret", "_client_keypair",
                   "_pre_client_hello_handshake_hash", "_ccs_sent", "_middlebox_compat_mode",
                   "_buffer_content_type", "_buffer", "_clientRandom", "_serverRandom"),
    "record_layer": ("_version", "_tls13record", "_recordSocket", "_readState", "_writeState",
                     "_pendingReadState", "_pendingWriteState", "_early_data_processed",
                     "early_data_ok", "max_early_data", "recv_record_limit",
                     "send_record_limit", "padding_cb", "client"),
    "sock": ("_read_buffer", "socket", "buffer_writes"),
    "defragmenter": ("priorities", "buffers", "decoders"),
}

#: Attributes tlslite sets during a handshake (not on a fresh connection), by the method
#: that assigns them: its code must still name them.
ASSIGNED_ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "tlslite.tlsconnection.TLSConnection._clientTLS13Handshake": (
        "_first_handshake_hashes", "_send_record_limit", "_recv_record_limit"),
    "tlslite.tlsconnection.TLSConnection._serverTLS13Handshake": ("_first_handshake_hashes",),
    # (tickets._lean_payload fills a SessionTicketPayload as its parse does)
    "tlslite.messages.SessionTicketPayload._parse_cert_chain": ("_cert_chain",),
    # (certcompress.BoundedCompressedCertificate parses as tlslite's parse does)
    "tlslite.messages.CompressedCertificate.__init__": ("_compressed_msg",
                                                        "_uncompressed_msg_len"),
}

#: Module globals that :mod:`.rebind` replaces in rebound namespaces (each must exist).
MODULE_GLOBALS: dict[str, tuple[str, ...]] = {
    "tlslite.tlsconnection": ("secureHMAC", "HKDF_expand_label", "derive_secret",
                              "CipherSuite", "HandshakeHashes", "SignatureScheme",
                              "HashAlgorithm", "GroupName", "TLS_1_3_FORBIDDEN_GROUPS",
                              "HandshakeHelpers", "ClientHello", "TLSExtension",
                              "KeyExchange"),
    "tlslite.tlsrecordlayer": ("KeyExchange",),
    "tlslite.keyexchange": ("SignatureScheme", "HashAlgorithm", "KeyExchange"),
    "tlslite.handshakehelpers": ("HandshakeHelpers",),
    "tlslite.utils.dns_utils": ("is_valid_hostname",),
}


def _resolve(path: str) -> Any:
    """The object a dotted path names: a module, then attributes (class, member)."""
    parts = path.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj: Any = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        for part in parts[i:]:
            obj = vars(obj)[part] if isinstance(obj, type) and part in vars(obj) \
                else getattr(obj, part)
        return obj
    raise ImportError(path)


def _fresh_objects() -> dict[str, Any]:
    from tlslite import TLSConnection

    from .driver import _MemorySocket

    connection = TLSConnection(_MemorySocket())
    return {"connection": connection, "record_layer": connection._recordLayer,
            "sock": connection.sock, "defragmenter": connection._defragmenter}


def check() -> list[str]:
    """Differences between the installed tlslite-ng and what aiotls relies on (one line
    each; empty when everything is where aiotls expects it)."""
    problems: list[str] = []
    for path, expected in SIGNATURES.items():
        try:
            member = _resolve(path)
        except (ImportError, AttributeError, KeyError):
            problems.append(f"{path}: missing (aiotls overrides or calls it)")
            continue
        func = member.__func__ if isinstance(member, staticmethod | classmethod) else member
        got = str(inspect.signature(func))
        if got != expected:
            problems.append(f"{path}: signature {got}, aiotls expects {expected}")
    for path in PROPERTIES:
        try:
            member = _resolve(path)
        except (ImportError, AttributeError, KeyError):
            member = None
        if not isinstance(member, property):
            problems.append(f"{path}: not a property any more (aiotls reads or sets it)")
    for path in CLASS_ATTRIBUTES:
        try:
            _resolve(path)
        except (ImportError, AttributeError, KeyError):
            problems.append(f"{path}: missing (aiotls reads it)")
    from .rebind import _code_objects

    for path, names in ASSIGNED_ATTRIBUTES.items():
        try:
            method = _resolve(path)
        except (ImportError, AttributeError, KeyError):
            problems.append(f"{path}: missing (it sets {', '.join(names)})")
            continue
        used = {name for code in _code_objects(method) for name in code.co_names}
        for name in names:
            if name not in used:
                problems.append(f"{path}: no longer sets {name} (aiotls reads it)")
    objects = _fresh_objects()
    for kind, names in INSTANCE_ATTRIBUTES.items():
        for name in names:
            if not hasattr(objects[kind], name):
                problems.append(f"tlslite {kind} object: attribute {name} missing")
    for module_name, names in MODULE_GLOBALS.items():
        module = importlib.import_module(module_name)
        for name in names:
            if name not in vars(module):
                problems.append(f"{module_name}.{name}: module global missing (aiotls's "
                                "rebinding replaces it)")
    from .base import _REBOUND_METHODS, _ReboundTLSConnection

    for module, method_names in _REBOUND_METHODS.items():
        owner = vars(module).get("TLSConnection") or vars(module).get("TLSRecordLayer")
        for name in method_names:
            if name not in vars(owner):
                problems.append(f"{module.__name__}.{owner.__name__}.{name}: missing (aiotls "
                                "runs it with faster helpers)")
                continue
            # the rebound copy must run the same code as tlslite's method
            mine = list(_code_objects(vars(_ReboundTLSConnection).get(name)))
            theirs = list(_code_objects(vars(owner)[name]))
            if [c.co_code for c in mine] != [c.co_code for c in theirs]:
                problems.append(f"{module.__name__}.{owner.__name__}.{name}: the rebound "
                                "copy differs from tlslite's code")
    return problems
