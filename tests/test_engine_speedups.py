"""The engine's speed-ups over tlslite's own code, each checked for equivalence.

tlslite's handshake methods run with aiotls's faster helpers (``_engine.rebind._rebind``).

The rebound methods must be tlslite's own code (same code objects), every tlslite method
that uses the replaced helpers must be covered (a tlslite upgrade that adds one fails
here), the replacements must compute exactly what tlslite's versions compute, and a real
handshake must not reach tlslite's slow versions at all.
"""

from __future__ import annotations

import os
import random
import ssl
import types
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import tlslite.extensions
import tlslite.handshakehelpers
import tlslite.messages
import tlslite.tlsconnection
import tlslite.tlsrecordlayer
from tlslite import HandshakeSettings
from tlslite.constants import CipherSuite, GroupName, HashAlgorithm, SignatureScheme
from tlslite.errors import TLSInternalError
from tlslite.handshakehashes import HandshakeHashes
from tlslite.utils import cryptomath

import aiotls
from aiotls import _engine, _record
from aiotls.events import DataReceived
from tests.helpers import PKI, VERSIONS, connect, handshake, pump
from tests.stdlib_peer import StdlibPeer, run

_OWNERS = {
    tlslite.tlsconnection: tlslite.tlsconnection.TLSConnection,
    tlslite.tlsrecordlayer: tlslite.tlsrecordlayer.TLSRecordLayer,
}
#: tlslite methods that use a replaced name but are deliberately left alone.
_LEFT_ALONE = {"_serverSRPKeyExchange", "_getKEX", "__init__"}


def _names(code: types.CodeType) -> set[str]:
    found = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            found |= _names(const)
    return found


def _function(obj: object) -> types.FunctionType:
    func = obj.__func__ if isinstance(obj, staticmethod | classmethod) else obj
    assert isinstance(func, types.FunctionType)
    return func


def test_every_method_using_the_helpers_is_rebound() -> None:
    replaced = (set(_engine.rebind._FAST_NAMES) | {"HandshakeHelpers", "TLSExtension"}
                | set(_engine.verification._QUICK_EXTENSIONS))
    for module, owner in _OWNERS.items():
        users = {
            name for name, attr in vars(owner).items()
            if isinstance(attr, types.FunctionType | staticmethod | classmethod)
            and _names(_function(attr).__code__) & replaced
        }
        assert users, "tlslite changed: none of its methods use the replaced helpers"
        assert users - _LEFT_ALONE == set(_engine.base._REBOUND_METHODS[module])


@pytest.mark.speedups
def test_rebound_methods_are_tlslites_code_with_fast_globals() -> None:
    for module, names in _engine.base._REBOUND_METHODS.items():
        owner = _OWNERS[module]
        for name in names:
            original = vars(owner)[name]
            rebound = vars(_engine.base._ReboundTLSConnection)[name]
            assert type(rebound) is type(original), name
            assert _function(rebound).__code__ is _function(original).__code__, name
            namespace = _function(rebound).__globals__
            assert namespace is not vars(module)
            for key, fast in _engine.rebind._FAST_NAMES.items():
                if key in vars(module):
                    # (derive_secret runs inside the exporter fix, see
                    # aiotls/_engine/exporter.py)
                    assert getattr(namespace[key], "__wrapped__", namespace[key]) is fast, \
                        (name, key)
    # tlslite's own modules are untouched
    assert tlslite.tlsconnection.derive_secret is cryptomath.derive_secret
    assert tlslite.tlsconnection.CipherSuite is CipherSuite
    assert tlslite.tlsconnection.HandshakeHelpers is tlslite.handshakehelpers.HandshakeHelpers


@pytest.mark.parametrize(("hash_name", "size"), [("sha256", 32), ("sha384", 48)])
def test_fast_helpers_equal_tlslites(hash_name: str, size: int) -> None:
    for _ in range(10):
        key = bytearray(os.urandom(size))
        data = bytearray(os.urandom(100))
        assert _engine.rebind._fast_hmac(key, data, hash_name) == cryptomath.secureHMAC(key, data,
                                                                                  hash_name)
        for label, length in ((b"key", 16), (b"iv", 12), (b"finished", size), (b"res binder", size),
                              (b"exp master", 3 * size + 5)):
            context = bytearray(os.urandom(size))
            expected = cryptomath.HKDF_expand_label(key, bytearray(label), context, length,
                                                    hash_name)
            got = _engine.rebind._fast_hkdf_expand_label(key, bytearray(label), context, length,
                                                  hash_name)
            assert isinstance(got, bytearray) and got == expected
        hashes = HandshakeHashes()
        hashes.update(data)
        for transcript in (None, hashes):
            assert _engine.rebind._fast_derive_secret(key, bytearray(b"c hs traffic"), transcript,
                                               hash_name) == \
                cryptomath.derive_secret(key, bytearray(b"c hs traffic"), transcript, hash_name)


def test_cached_suite_filtering_equals_tlslites() -> None:
    variants = []
    for ciphers in (["aes128gcm"], ["chacha20-poly1305", "aes256gcm"],
                    HandshakeSettings().cipherNames):
        for kex in (["ecdhe_rsa", "ecdhe_ecdsa"], HandshakeSettings().keyExchangeNames):
            settings = HandshakeSettings()
            settings.cipherNames = list(ciphers)
            settings.keyExchangeNames = list(kex)
            variants.append(settings)
    for settings in variants:
        for getter in ("getTLS13Suites", "getCertSuites", "getEcdheCertSuites",
                       "getEcdsaSuites", "getDheCertSuites", "getAnonSuites"):
            for version in (None, (3, 3), (3, 4)):
                for _ in range(2):  # the second call is served from the cache
                    got = getattr(_engine.rebind._CachedSuites, getter)(settings, version)
                    assert got == getattr(CipherSuite, getter)(settings, version)
                got.append(-1)  # callers may mutate what they get; the cache must not change
                assert getattr(_engine.rebind._CachedSuites, getter)(settings, version) == \
                    getattr(CipherSuite, getter)(settings, version)


def test_cached_enum_names_equal_tlslites() -> None:
    for base in (SignatureScheme, HashAlgorithm, GroupName):
        fast = _engine.rebind._FAST_NAMES[base.__name__]
        assert issubclass(fast, base)
        values = [v for k, v in vars(base).items() if not k.startswith("_")
                  and isinstance(v, int | tuple)]
        assert len(values) > 5
        for value in [*values, 0xFAFA, (99, 99)]:
            for _ in range(2):
                assert fast.toRepr(value) == base.toRepr(value)
                assert fast.toStr(value) == base.toStr(value)
    assert _engine.rebind._FAST_NAMES["GroupName"].toRepr(GroupName.x25519, ["x25519"]) is None


@pytest.fixture
def no_slow_helpers(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """tlslite's own helpers fail if called: only aiotls's faster ones may run."""
    used: list[str] = []

    def poison(target: object, name: str) -> None:
        label = f"{getattr(target, '__name__', target)}.{name}"

        def fail(*args: object, **kwargs: object) -> None:
            used.append(label)
            raise AssertionError(f"tlslite's slow {label} was called")

        monkeypatch.setattr(target, name, fail)

    for module in (tlslite.tlsconnection, tlslite.tlsrecordlayer, tlslite.handshakehelpers):
        for name in ("derive_secret", "HKDF_expand_label", "secureHMAC", "is_valid_hostname"):
            if hasattr(module, name):
                poison(module, name)
    helpers = tlslite.handshakehelpers.HandshakeHelpers
    for name in ("_calc_binder", "calc_res_binder_psk", "update_binders", "verify_binder"):
        poison(helpers, name)
    yield used
    assert used == []


@pytest.mark.parametrize("version", VERSIONS)
def test_handshakes_and_resumption_use_only_the_fast_helpers(
        pki: PKI, no_slow_helpers: list[str], version: str) -> None:
    cctx = pki.client_context()
    cctx.maximum_version = VERSIONS[version]
    sctx = pki.server_context()
    first, _ = connect(cctx, sctx)
    assert first.version() == version
    again, server = connect(cctx, sctx, session=first.session)
    assert again.session_reused and server.session_reused
    again.send_data(b"ping")
    pump(again, server)
    assert [e.data for e in server.events() if isinstance(e, DataReceived)] == [b"ping"]


def test_post_handshake_auth_uses_only_the_fast_helpers(pki: PKI,
                                                        no_slow_helpers: list[str]) -> None:
    sctx = pki.server_context()
    sctx.verify_mode = ssl.CERT_OPTIONAL
    sctx.load_verify_locations(cafile=pki.ca_file)
    sctx.post_handshake_auth = True
    cctx = pki.client_context()
    cctx.load_cert_chain(pki.client[1], pki.client[2])
    cctx.post_handshake_auth = True
    client, server = handshake(cctx, sctx)
    assert client.version() == "TLSv1.3"
    server.verify_client_post_handshake()
    pump(client, server)
    assert server.getpeercert() is not None, server.error


def test_rebound_engine_interoperates_with_openssl(pki: PKI, no_slow_helpers: list[str]) -> None:
    for version in VERSIONS.values():
        ctx = pki.client_context()
        ctx.maximum_version = version
        conn = aiotls.TLSConnection(ctx, server_hostname="localhost")
        peer = StdlibPeer(pki.stdlib_server_context(), server_side=True)
        run(conn, peer)
        assert conn.handshake_complete, conn.error


# --- extension and message classes without tlslite's exception-per-attribute cost ----------


def test_quick_extension_dispatch_covers_every_field_name_extension() -> None:
    base = tlslite.extensions.TLSExtension
    quick = _engine.quick._QuickTLSExtension
    assert issubclass(quick, base) and quick.__name__ == "TLSExtension"
    tables = [attr for attr, value in vars(base).items()
              if attr.endswith("Extensions") and isinstance(value, dict)]
    assert len(tables) == 4
    for attr in tables:
        original, fast = getattr(base, attr), getattr(quick, attr)
        assert original.keys() == fast.keys()
        for ext_type, cls in original.items():
            if issubclass(cls, tlslite.extensions.CustomNameExtension):
                assert fast[ext_type] is _engine.verification._QUICK_EXTENSIONS[cls.__name__]
                assert issubclass(fast[ext_type], cls)
            else:
                assert fast[ext_type] is cls


@pytest.mark.speedups
def test_quick_messages_keep_original_class_names_for_super() -> None:
    originals = [getattr(tlslite.messages, name) for name in _engine.driver._QUICK_MESSAGES]
    with_super = _engine.rebind._named_with_super(originals)
    assert {"ClientHello", "ServerHello", "CompressedCertificate"} <= with_super
    assert "CertificateEntry" not in with_super
    for name, quick in _engine.driver._QUICK_MESSAGES.items():
        original = getattr(tlslite.messages, name)
        assert quick.__bases__ == (original,) and quick.__name__ == original.__name__
        for value in vars(quick).values():
            if isinstance(value, types.FunctionType | staticmethod | classmethod):
                func = _function(value)
                if "tlslite" not in func.__code__.co_filename:
                    continue  # aiotls's own wrappers (ClientHello bytes as received)
                namespace = func.__globals__
                # tlslite writes super(ClientHello, self): those names stay the originals
                for other in with_super & set(_engine.driver._QUICK_MESSAGES):
                    assert namespace[other] is getattr(tlslite.messages, other), other
                assert namespace["CertificateEntry"] is _engine.driver._QUICK_MESSAGES["CertificateEntry"]
                assert namespace["TLSExtension"] is _engine.quick._QuickTLSExtension
                assert namespace["X509"] is _engine.accel._PeerX509
    rebound = _function(vars(_engine.base._ReboundTLSConnection)["_getMsg"])
    assert rebound.__code__ is tlslite.tlsrecordlayer.TLSRecordLayer._getMsg.__code__
    assert rebound.__globals__["ClientHello"] is _engine.driver._QUICK_MESSAGES["ClientHello"]
    assert rebound.__globals__["derive_secret"].__wrapped__ is _engine.rebind._fast_derive_secret


def _hello_bytes(pki: PKI) -> list[bytes]:
    """ClientHellos from aiotls (fresh and resuming) and from OpenSSL, without the record
    header."""
    ctx = pki.client_context()
    ctx.set_alpn_protocols(["h2", "http/1.1"])
    first, _ = connect(ctx, pki.server_context())
    hellos = [aiotls.TLSConnection(ctx, server_hostname="localhost").data_to_send(),
              aiotls.TLSConnection(ctx, server_hostname="localhost",
                                   session=first.session).data_to_send()]
    stdlib = pki.stdlib_client_context()
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = stdlib.wrap_bio(incoming, outgoing, server_hostname="localhost")
    with pytest.raises(ssl.SSLWantReadError):
        obj.do_handshake()
    hellos.append(outgoing.read())
    return [bytes(h[5:]) for h in hellos]


@pytest.mark.speedups
def test_quick_client_hello_parses_and_writes_like_tlslites(pki: PKI) -> None:
    from tlslite.utils.codec import Parser

    for raw in _hello_bytes(pki):
        original = tlslite.messages.ClientHello().parse(Parser(bytearray(raw[1:])))
        quick = _engine.driver._QUICK_MESSAGES["ClientHello"]().parse(Parser(bytearray(raw[1:])))
        assert quick.write() == original.write() == bytearray(raw)
        assert len(quick.extensions) == len(original.extensions) > 5
        for fast, slow in zip(quick.extensions, original.extensions, strict=True):
            assert isinstance(fast, type(slow)) and fast == slow
            assert fast.extType == slow.extType and fast.write() == slow.write()
        assert any(isinstance(e, _engine.quick._QuickFieldMixin) for e in quick.extensions)
        for ext_type in {e.extType for e in original.extensions} | {0xFAFA, 0xFFFF}:
            fast_ext, slow_ext = quick.getExtension(ext_type), original.getExtension(ext_type)
            assert (fast_ext is None) == (slow_ext is None)
            assert fast_ext is None or fast_ext.write() == slow_ext.write()
        quick.extensions.append(quick.extensions[0])  # a duplicate: both refuse it
        original.extensions.append(original.extensions[0])
        for hello in (quick, original):
            with pytest.raises(TLSInternalError, match="Multiple extensions"):
                hello.getExtension(original.extensions[0].extType)


@pytest.mark.speedups
def test_extension_lookup_follows_every_change_of_the_list(pki: PKI) -> None:
    """A hello's lookups by type stay tlslite's after each way tlslite and aiotls change a
    hello's extensions: append, remove, insert, filter in place, replace the last one,
    assign another list, add a duplicate (the index behind the lookups is remade)."""
    from tlslite.utils.codec import Parser

    raw = _hello_bytes(pki)[0]
    quick = _engine.driver._QUICK_MESSAGES["ClientHello"]().parse(Parser(bytearray(raw[1:])))
    original = tlslite.messages.ClientHello().parse(Parser(bytearray(raw[1:])))
    spare = tlslite.extensions.TLSExtension().create(0xFAFA, bytearray(b"x"))
    types = sorted({e.extType for e in original.extensions} | {0xFAFA, 0xFFFF})

    def same() -> None:
        assert len(quick.extensions) == len(original.extensions)
        for ext_type in types:
            outcomes = []
            for hello in (quick, original):
                try:
                    found = hello.getExtension(ext_type)
                except TLSInternalError:
                    outcomes.append("twice")
                else:
                    outcomes.append(None if found is None else bytes(found.write()))
            assert outcomes[0] == outcomes[1], ext_type

    def both(change: Callable[[list[Any]], None]) -> None:
        for hello in (quick, original):
            change(hello.extensions)
        same()

    same()
    both(lambda exts: exts.append(spare))
    both(lambda exts: exts.remove(spare))
    both(lambda exts: exts.insert(2, spare))
    both(lambda exts: exts.__setitem__(slice(None), [e for e in exts if e is not spare]))
    both(lambda exts: exts.__setitem__(slice(None), list(exts)))  # (nothing filtered out)
    both(lambda exts: exts.__setitem__(-1, spare))  # (same length, another last one)
    for hello in (quick, original):
        hello.extensions = list(reversed(hello.extensions))
    same()
    other = tlslite.extensions.TLSExtension().create(0xFFFF, bytearray(b"y"))
    for hello in (quick, original):  # (another list: same length and last one)
        hello.extensions = [other, *hello.extensions[1:]]
    same()
    both(lambda exts: exts.append(exts[0]))  # a duplicate: both refuse it
    while len(quick.extensions) > 3:  # (short lists are scanned)
        both(lambda exts: exts.pop(0))


@pytest.mark.speedups
def test_handshakes_build_only_quick_extensions(pki: PKI,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    slow: list[str] = []
    original_init = tlslite.extensions.CustomNameExtension.__init__

    def init(self: object, *args: object, **kwargs: object) -> None:
        if not isinstance(self, _engine.quick._QuickFieldMixin):
            slow.append(type(self).__name__)
        original_init(self, *args, **kwargs)

    monkeypatch.setattr(tlslite.extensions.CustomNameExtension, "__init__", init)
    for version in VERSIONS.values():
        cctx = pki.client_context()
        cctx.maximum_version = version
        first, _ = connect(cctx, pki.server_context())
        again, _ = connect(cctx, pki.server_context(), session=first.session)
        assert first.handshake_complete and again.handshake_complete
    # (including the cert_type extension that a ClientHello *property* builds)
    assert slow == []


def test_transcript_hashes_equal_tlslites() -> None:
    names = ["md5", "sha1", "sha224", "sha256", "sha384", "sha512", "intrinsic", None]
    for seed in range(20):
        rng = random.Random(seed)
        slow, fast = HandshakeHashes(), _engine.rebind._TranscriptHashes()
        for _step in range(rng.randrange(1, 12)):
            chunk = bytearray(os.urandom(rng.randrange(0, 300)))
            slow.update(chunk)
            fast.update(chunk)
            name = rng.choice(names)
            assert fast.digest(name) == slow.digest(name)
            if rng.random() < 0.3:  # copies diverge independently
                slow_copy, fast_copy = slow.copy(), fast.copy()
                extra = os.urandom(50)
                slow_copy.update(extra)
                fast_copy.update(extra)
                for other in names:
                    assert fast_copy.digest(other) == slow_copy.digest(other)
                    assert fast.digest(other) == slow.digest(other)
        secret, label = bytearray(os.urandom(48)), b"CLNT"
        assert fast.digestSSL(secret, label) == slow.digestSSL(secret, label)
        with pytest.raises(ValueError, match="Unknown digest"):
            fast.digest("sha3_256")


@pytest.mark.speedups
def test_handshakes_keep_only_the_transcript_hashes_they_use(
        pki: PKI, monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(self: object, data: object) -> None:
        raise AssertionError("tlslite's six-hash transcript was used")

    monkeypatch.setattr(HandshakeHashes, "update", fail)
    # (the transcript as each handshake ends, before it is let go: see _SpentTranscript)
    seen: list[object] = []
    tlsconn = _engine.tlsconn._TLSLiteConnection
    spend = tlsconn._aiotls_spend_transcript

    def spy(self: Any) -> None:
        seen.append(self._handshake_hash)
        spend(self)

    monkeypatch.setattr(tlsconn, "_aiotls_spend_transcript", spy)
    for version in VERSIONS.values():
        cctx = pki.client_context()
        cctx.maximum_version = version
        client, server = connect(cctx, pki.server_context())
        assert client.handshake_complete and server.handshake_complete, client.error
        again, server = connect(cctx, pki.server_context(), session=client.session)
        assert again.handshake_complete, again.error
    assert len(seen) == 8  # two ends, two handshakes, two versions
    for hashes in seen:
        assert isinstance(hashes, _engine.rebind._TranscriptHashes)
        assert set(hashes._running) <= {"sha256", "sha384"}


# --- settings validated once per context; no second pass over our own signatures ----------


def test_settings_are_validated_once_per_context(pki: PKI,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    cctx, sctx = pki.client_context(), pki.server_context()
    handshake(cctx, sctx)  # prepares (and validates) both contexts
    prepared = [cctx._engine_cache.client_settings, sctx._engine_cache.server_settings]
    before = [dict(vars(p._aiotls_validated)) for p in prepared]

    def fail(self: object) -> None:
        raise AssertionError("settings validated again")

    monkeypatch.setattr(HandshakeSettings, "validate", fail)
    client, server = handshake(cctx, sctx)
    assert client.handshake_complete and server.handshake_complete
    monkeypatch.undo()
    # a server asking for a client certificate after the handshake derives its own copy
    sctx.verify_mode = ssl.CERT_OPTIONAL
    sctx.load_verify_locations(cafile=pki.ca_file)
    cctx.load_cert_chain(pki.client[1], pki.client[2])
    cctx.post_handshake_auth = sctx.post_handshake_auth = True
    client, server = handshake(cctx, sctx)
    server.verify_client_post_handshake()
    pump(client, server)
    assert server.getpeercert()
    # ...and the shared validated settings of the first preparation were never modified
    assert [dict(vars(p._aiotls_validated)) for p in prepared] == before


@pytest.mark.speedups
def test_own_ecdsa_signature_is_not_verified_twice(pki: PKI,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from aiotls import _crypto

    key = pki.server_context()
    client, server = handshake(pki.client_context(), key)
    private = key._engine_cache.private_key
    assert isinstance(private, _engine.accel._FastECDSAKey)
    signature, digest = private._aiotls_signed
    calls: list[bytes] = []
    real = _crypto.ecdsa_verify_digest

    def counting(public: object, sig: bytes, dig: bytes) -> bool:
        calls.append(bytes(sig))
        return real(public, sig, dig)

    monkeypatch.setattr(_crypto, "ecdsa_verify_digest", counting)
    assert private._verify(bytearray(signature), bytearray(digest)) is True
    assert calls == []  # the signature it just made
    tampered = bytearray(signature)
    tampered[-1] ^= 1
    assert private._verify(tampered, bytearray(digest)) is False
    assert private._verify(bytearray(signature), bytearray(b"x" * len(digest))) is False
    assert len(calls) == 2  # anything else is verified for real


def _resuming_hellos(pki: PKI) -> list[bytes]:
    """TLS 1.3 ClientHellos carrying a PSK, from aiotls and from OpenSSL."""
    ctx = pki.client_context()
    first, _ = connect(ctx, pki.server_context())
    hellos = [bytes(aiotls.TLSConnection(ctx, server_hostname="localhost",
                                         session=first.session).data_to_send())]
    stdlib_ctx = pki.stdlib_client_context()
    peer = StdlibPeer(stdlib_ctx, server_side=False, server_hostname="localhost")
    server = aiotls.TLSConnection(pki.server_context(), server_side=True)
    run(server, peer)
    server.send_data(b"x")
    peer.incoming.write(server.data_to_send())
    peer.step()
    session = peer.obj.session
    assert session is not None and session.has_ticket
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    again = stdlib_ctx.wrap_bio(incoming, outgoing, server_hostname="localhost",
                                session=session)
    with pytest.raises(ssl.SSLWantReadError):
        again.do_handshake()
    hellos.append(outgoing.read())
    return [h[5:] for h in hellos]


def test_psk_binder_is_checked_over_the_received_bytes(pki: PKI) -> None:
    from tlslite.utils.codec import Parser

    for raw in _resuming_hellos(pki):
        quick = _engine.driver._QUICK_MESSAGES["ClientHello"]()
        parser = Parser(bytearray(raw))
        parser.get(1)  # the handshake type, read by tlslite before parse()
        quick.parse(parser)
        assert quick._aiotls_wire == raw
        original = tlslite.messages.ClientHello().parse(Parser(bytearray(raw[1:])))
        assert quick.psk_truncate() == original.psk_truncate()
        assert len(quick.psk_truncate()) < len(raw)



@pytest.mark.speedups
def test_resuming_client_hello_is_serialised_once(pki: PKI,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """The client's own resuming ClientHello is serialised once: truncating it for the
    binders keeps the prefix, and sending it adds the binders (tlslite serialised the
    whole message twice).  The bytes sent are tlslite's serialisation of the message.
    (This is tlslite's method for the ClientHello; test_client_hello.py has the one made
    from a remembered ClientHello, which is serialised from its pieces.)"""
    monkeypatch.setattr(_engine.client_hello, "ENABLED", False)
    cctx, sctx = pki.client_context(), pki.server_context()
    first, _ = connect(cctx, sctx)
    session = first.session
    assert session is not None
    quick = _engine.driver._QUICK_MESSAGES["ClientHello"]
    serialise = quick._write
    hellos: list[tlslite.messages.ClientHello] = []

    def counting(self: tlslite.messages.ClientHello) -> bytearray:
        hellos.append(self)
        return serialise(self)  # type: ignore[no-any-return]

    monkeypatch.setattr(quick, "_write", counting)
    client = aiotls.TLSConnection(cctx, server_hostname="localhost", session=session)
    flight = client.data_to_send()
    assert len(hellos) == 1
    assert bytes(flight[5:]) == bytes(serialise(hellos[0]))  # (after the record header)
    server = aiotls.TLSConnection(sctx, server_side=True)
    server.receive_data(flight)
    pump(client, server)
    assert client.session_reused and server.session_reused


@pytest.mark.speedups
def test_peer_certificates_take_openssls_parse(pki: PKI, monkeypatch: pytest.MonkeyPatch) -> None:
    """NIST ECDSA certificates from the peer are not parsed by tlslite (Python ASN.1 and
    python-ecdsa point decoding); tlslite's parse still handles RSA and EdDSA, and the fields
    tlslite's fast path leaves out are filled in on demand."""
    from tlslite.x509 import X509

    parsed: list[str] = []
    original = X509.parseBinary

    def counting(self: X509, cert_bytes: bytes) -> X509:
        parsed.append(type(self).__name__)
        return original(self, cert_bytes)

    monkeypatch.setattr(X509, "parseBinary", counting)
    for key_type, tlslite_parses in (("ecdsa-p256", False), ("ecdsa-p384", False),
                                     ("rsa2048", True), ("ed25519", True)):
        for version in VERSIONS.values():
            cctx = pki.client_context()
            cctx.maximum_version = version
            sctx = pki.server_context(key_type)  # type: ignore[arg-type]
            handshake(cctx, sctx)  # the server parses its own chain once per context
            parsed.clear()
            client, server = handshake(cctx, sctx)
            assert client.handshake_complete, client.error
            assert bool(parsed) == tlslite_parses, (key_type, parsed)
            cert = client._engine._tl.session.serverCertChain.x509List[0]
            if not tlslite_parses:
                assert isinstance(cert, _engine.accel._PeerX509)
                key = cert.publicKey
                assert isinstance(key, _engine.accel._FastECDSAKey) and key._aiotls_public is not None
                assert len(key) == {"ecdsa-p256": 256, "ecdsa-p384": 384}[key_type]
                reference = X509()
                original(reference, cert.bytes)
                assert key.curve_name == reference.publicKey.curve_name
                for field in ("serial_number", "issuer", "subject", "sigalg"):
                    assert getattr(cert, field) == getattr(reference, field)


def test_malformed_peer_certificate_still_fails_cleanly(pki: PKI) -> None:
    """A certificate OpenSSL cannot parse falls back to tlslite's parser and its error."""
    from tlslite.utils.codec import DecodeError

    bogus = _engine.accel._PeerX509()
    with pytest.raises((SyntaxError, DecodeError, IndexError, ValueError)):
        bogus.parseBinary(bytearray(b"\x30\x03\x02\x01\x01"))


def test_signature_scheme_lists_are_remembered_per_context(pki: PKI) -> None:
    sctx = pki.server_context()
    handshake(pki.client_context(), sctx)
    prepared = sctx._engine_cache
    settings = prepared.server_settings.validate()
    conn_class = _engine.tlsconn._TLSLiteConnection
    base = tlslite.tlsconnection.TLSConnection._sigHashesToList
    for args in ((settings,), (settings, prepared.private_key, prepared.cert_chain, (3, 4)),
                 (settings, prepared.private_key, prepared.cert_chain, (3, 3))):
        first = conn_class._sigHashesToList(*args)
        assert first == base(*args) and first
        first.append("mutated by a caller")
        assert conn_class._sigHashesToList(*args) == base(*args)
    other = settings.validate()  # an equal but different settings object is not a hit
    other.ecdsaSigHashes = ["sha256"]
    assert conn_class._sigHashesToList(other) == base(other) != base(settings)


@pytest.mark.parametrize(("name", "values"), [
    ("SupportedGroupsExtension", [29, 23]),
    ("SignatureAlgorithmsExtension", [(4, 3), (8, 4)]),
    ("SupportedVersionsExtension", [(3, 4), (3, 3)]),
    ("PskKeyExchangeModesExtension", [1]),
    ("ECPointFormatsExtension", [0]),
])
def test_quick_extension_fields_behave_like_tlslites(name: str, values: list[object]) -> None:
    original_cls = getattr(tlslite.extensions, name)
    quick_cls = _engine.verification._QUICK_EXTENSIONS[name]
    original, quick = original_cls().create(values), quick_cls().create(values)
    field = original._field_name
    assert quick.__dict__.get("__setattr__") is None  # set on the class, not per object
    assert getattr(quick, field) == getattr(original, field) == values
    assert quick.write() == original.write()
    setattr(original, field, values[:1])
    setattr(quick, field, values[:1])
    assert quick._internal_value == original._internal_value == values[:1]
    assert quick.write() == original.write()
    quick.extType = original.extType  # any other attribute is a plain one
    assert vars(quick) == vars(original)
    with pytest.raises(AttributeError):
        quick.no_such_field


# --- the quick extension parser -------------------------------------------------------------

_EXT_FLAGS = [{"server": s, "cert": c, "hrr": h} for s in (False, True) for c in (False, True)
              for h in (False, True)]


def _parse_both(raw: bytes, flags: dict[str, bool]) -> tuple[object, object]:
    """Parse one extension (header included) with tlslite's parser and the quick one, each
    from a parser that has already read 3 other bytes; returns (outcome, outcome), where an
    outcome is ``(class name, attributes, parser index)`` or ``(exception type, message)``."""
    from tlslite.utils.codec import Parser

    outcomes = []
    for ext_class in (tlslite.extensions.TLSExtension, _engine.quick._QuickTLSExtension):
        p = Parser(bytearray(b"\x01\x02\x03" + raw + b"\xee"))
        p.index = 3
        try:
            ext = ext_class(**flags).parse(p)
        except Exception as exc:  # (both must raise the same)
            outcomes.append((type(exc), str(exc)))
        else:
            outcomes.append((type(ext).__name__, _plain(ext), p.index))
    return outcomes[0], outcomes[1]


def _plain(value: object) -> object:
    """``value`` as nested builtins, objects by class name and attributes (tlslite's key
    share entries and PSK identities compare by identity)."""
    if isinstance(value, list | tuple):
        return type(value).__name__, [_plain(item) for item in value]
    if hasattr(value, "__dict__") and not isinstance(value, type):
        return type(value).__name__, {k: _plain(v) for k, v in vars(value).items()}
    return type(value).__name__, value


def _v16(body: bytes) -> bytes:
    return len(body).to_bytes(2, "big") + body


def _structured_payloads(rng: random.Random) -> Iterator[bytes]:
    """Well-formed server_name, key_share (client and server), pre_shared_key,
    session_ticket and selected-version payloads (any of them is tried as every type)."""
    def blob(most: int) -> bytes:
        return bytes(rng.randrange(256) for _ in range(rng.randrange(most)))

    yield _v16(b"".join(bytes((rng.choice((0, 1)),)) + _v16(blob(20))
                        for _ in range(rng.randrange(3))))  # server_name list
    entries = [rng.randrange(65536).to_bytes(2, "big") + _v16(blob(40))
               for _ in range(rng.randrange(3))]
    yield _v16(b"".join(entries))  # client key shares
    if entries:
        yield entries[0]  # the server's key share
    identities = b"".join(_v16(blob(30)) + rng.randrange(2 ** 32).to_bytes(4, "big")
                          for _ in range(rng.randrange(3)))
    binders = b"".join(bytes((n,)) + bytes(rng.randrange(256) for _ in range(n))
                       for n in (rng.choice((32, 48, 0, 5)) for _ in range(rng.randrange(3))))
    yield _v16(identities) + _v16(binders)  # pre_shared_key
    yield blob(60)  # a session ticket
    yield bytes((3, rng.randrange(5)))  # a selected version


def _ext_payloads(rng: random.Random, ext_type: int) -> Iterator[bytes]:
    """Well-formed payloads of each generic shape and of the structured extensions, and
    broken ones (the caller also truncates every extension)."""
    for payload in _structured_payloads(rng):
        yield payload
        yield payload + b"\x00"
        if payload:
            yield payload[:-1]
    for size in (1, 2):
        items = [rng.randrange(256 ** size) for _ in range(rng.randrange(6))]
        body = b"".join(i.to_bytes(size, "big") for i in items)
        for length_size in (1, 2):
            yield len(body).to_bytes(length_size, "big") + body
            yield (len(body) + 1).to_bytes(length_size, "big") + body
            yield len(body).to_bytes(length_size, "big") + body + b"\x00"
            yield len(body).to_bytes(length_size, "big") + body[:-1]
    for size in (0, 1, 2, 3):
        yield bytes(rng.randrange(256) for _ in range(size))
    yield bytes(rng.randrange(256) for _ in range(rng.randrange(40)))


def test_quick_extension_parser_equals_tlslites_for_any_payload() -> None:
    """Every extension type tlslite knows (and some it does not), in every parsing context,
    with well-formed, truncated, overlong and random payloads: the quick parser gives an
    object of the same class name with the same attributes, consuming the same bytes, or
    tlslite's own exception."""
    base = tlslite.extensions.TLSExtension
    known = {t for attr, table in vars(base).items()
             if attr.endswith("Extensions") and isinstance(table, dict) for t in table}
    rng = random.Random(4)
    quick_types = {cls().extType for cls in _engine.quick._QUICK_PARSERS}
    assert {0, 10, 11, 13, 35, 41, 43, 45, 28, 50, 51} <= quick_types  # the hello staples
    compared = 0
    for ext_type in sorted(known | {0xFAFA, 0x4469}):
        for _ in range(4):
            for payload in _ext_payloads(rng, ext_type):
                raw = ext_type.to_bytes(2, "big") + len(payload).to_bytes(2, "big") + payload
                for flags in _EXT_FLAGS:
                    for cut in (len(raw), rng.randrange(len(raw))):
                        slow, fast = _parse_both(raw[:cut], flags)
                        assert fast == slow, (ext_type, raw[:cut].hex(), flags)
                        compared += 1
    assert compared > 10000


def test_quick_extension_parser_keeps_objects_apart() -> None:
    """Objects made by the quick parser share no mutable state with each other."""
    from tlslite.utils.codec import Parser

    raw = bytes.fromhex("000a00060004001d0017") * 2
    p = Parser(bytearray(raw))
    first = _engine.quick._QuickTLSExtension().parse(p)
    second = _engine.quick._QuickTLSExtension().parse(p)
    assert first.groups == second.groups == [29, 23]
    assert first.groups is not second.groups and first._extData is not second._extData
    first._extData += b"x"
    first.groups.append(24)
    assert second._extData == bytearray() and second.groups == [29, 23]
    assert isinstance(first, _engine.verification._QUICK_EXTENSIONS["SupportedGroupsExtension"])


def test_remembered_hostname_check_equals_tlslites() -> None:
    from tlslite.utils.dns_utils import is_valid_hostname

    names = ["localhost", "example.com", "example.com.", "a" * 63 + ".com", "a" * 64 + ".com",
             "x." * 127 + "x", "x." * 130, "127.0.0.1", "1.2.3", "-bad.com", "bad-.com",
             "under_score.com", "ex ample.com", "", ".", "é.com", "xn--bcher-kva.example"]
    for name in names:
        for value in (name, bytearray(name.encode("utf-8"))):
            for _ in range(2):  # computed, then remembered
                try:
                    expected: object = is_valid_hostname(value)
                except Exception as exc:  # (tlslite raises on some inputs: so must we)
                    expected = type(exc)
                try:
                    got: object = _engine.rebind._fast_is_valid_hostname(value)
                except Exception as exc:
                    got = type(exc)
                assert got == expected, (value, got, expected)


def _generic_values(rng: random.Random) -> Iterator[object]:
    """Values a generic list or integer extension may hold: well-formed, empty, None,
    out of range, of the wrong shape."""
    yield None
    yield []
    for size in (1, 2, 3):
        yield [rng.randrange(256 ** size) for _ in range(rng.randrange(1, 6))]
    yield [(rng.randrange(256), rng.randrange(256)) for _ in range(rng.randrange(1, 5))]
    yield [(1, 2, 3)]
    yield [70000, 1]
    yield [-1]
    yield rng.randrange(2 ** 16)
    yield 2 ** 40
    yield [[1, 2]]  # unhashable: not remembered, written by tlslite


def test_remembered_extension_writes_equal_tlslites() -> None:
    """The generic list and integer extensions (most of a ClientHello) are written once per
    value and then remembered: every value, repeated, gives tlslite's bytes or its
    exception, each result a fresh object, and the memory stays bounded."""
    rng = random.Random(7)
    remembered = [cls for cls in _engine.verification._QUICK_EXTENSIONS.values()
                  if vars(cls).get("write") is _engine.quick._remembered_write]
    names = {cls.__name__ for cls in remembered}
    assert {"SignatureAlgorithmsExtension", "SupportedGroupsExtension",
            "SupportedVersionsExtension", "PskKeyExchangeModesExtension",
            "RecordSizeLimitExtension"} <= names
    compared = 0
    for cls in remembered:
        original = getattr(tlslite.extensions, cls.__name__)
        for _ in range(20):
            for value in _generic_values(rng):
                outcomes = []
                for klass in (original, cls, cls):  # the second quick write is remembered
                    try:
                        ext = klass()
                    except TypeError:  # (abstract bases want arguments)
                        break
                    ext._internal_value = value
                    try:
                        outcomes.append(bytes(ext.write()))
                    except Exception as exc:
                        outcomes.append(type(exc))
                else:
                    assert outcomes[0] == outcomes[1] == outcomes[2], (cls, value)
                    compared += 1
    assert compared > 1000
    assert len(_engine.quick._WRITTEN) <= 256
    ext = _engine.verification._QUICK_EXTENSIONS["SupportedGroupsExtension"]().create([29, 23])
    first = ext.write()
    first += b"changed"  # callers may extend what they get
    assert ext.write() == tlslite.extensions.SupportedGroupsExtension().create([29, 23]).write()


def test_suite_tables_as_sets_are_only_tested_for_membership() -> None:
    """The engine's CipherSuite holds the ECDH and DH suite tables as sets: same members,
    and every use of them in tlslite's code is a membership test."""
    import inspect
    import re

    for name in ("ecdhAllSuites", "dhAllSuites"):
        assert getattr(_engine.rebind._CachedSuites, name) == set(getattr(CipherSuite, name))
        for module in (tlslite.tlsconnection, tlslite.messages):
            for line in inspect.getsource(module).splitlines():
                if f"CipherSuite.{name}" in line:
                    assert re.search(rf"\bin CipherSuite\.{name}\b", line), line


def _tls13_layers(suite: int, *, client: bool, secret: bytes = b"") -> tuple[object, object]:
    """Two of the engine's record layers with the same TLS 1.3 traffic keys, both ways
    (``secret``: a different byte to derive other keys from).  For tlslite's own record
    code to run on them as the reference, call :func:`_keep_tlslite_ciphers` first."""
    from tlslite.bufferedsocket import BufferedSocket

    layers = []
    for _ in range(2):
        layer = _engine.records._RecordLayer(BufferedSocket(_engine.driver._MemorySocket()),
                                             _record.RecordLayer())
        layer.client = client
        layer.version = (3, 4)
        layer.tls13record = True
        size = 48 if suite in CipherSuite.sha384PrfSuites else 32
        layer.calcTLS1_3PendingState(suite, bytearray((secret or b"c") * size),
                                     bytearray((secret or b"s") * size), None)
        layer.changeReadState()
        layer.changeWriteState()
        layers.append(layer)
    return layers[0], layers[1]


def _keep_tlslite_ciphers(monkeypatch: pytest.MonkeyPatch) -> None:
    """tlslite's states keep their cipher with its key, as tlslite ships (the engine's
    layer gives them a key-less one once its own record layer holds the key)."""
    monkeypatch.setattr(_engine.records, "_held", lambda cipher: cipher)


def _drain(gen: Iterator[object]) -> object:
    result = None
    for result in gen:
        if result not in (0, 1):
            break
    return result


def _send(layer: object, content_type: int, payload: bytes, tlslites: bool) -> bytes:
    """Seal one record with tlslite's ``sendRecord`` or the engine's; the bytes sent."""
    from tlslite.messages import Message
    from tlslite.recordlayer import RecordLayer

    message = Message(content_type, bytearray(payload))
    _drain(RecordLayer.sendRecord(layer, message) if tlslites
           else layer.sendRecord(message))  # type: ignore[attr-defined]
    sock = layer._recordSocket.sock  # type: ignore[attr-defined]
    sock.flush()
    raw = b"".join(bytes(chunk) for chunk in sock.socket.outbox)
    sock.socket.outbox = ()
    return raw


def _receive(layer: object, raw: bytes, tlslites: bool) -> object:
    """Feed one record; ``(type, version, data, seqnum)`` or ``(exception, message)``."""
    from tlslite.recordlayer import RecordLayer

    layer._recordSocket.sock.socket.inbox += raw  # type: ignore[attr-defined]
    try:
        got = _drain(RecordLayer.recvRecord(layer) if tlslites else layer.recvRecord())
    except Exception as exc:
        return type(exc)  # (the alert follows from the type; aiotls's messages say more)
    header, parser = got  # type: ignore[misc]
    # (the sequence number's owner: tlslite's state on its path, aiotls's record layer on
    # the engine's)
    seq = layer._readState.seqnum if tlslites else \
        layer.records.keys(reading=True).seq  # type: ignore[attr-defined]
    return (header.type, header.version, header.length, bytes(parser.bytes), seq)


def _records(rng: random.Random, sealer: object) -> Iterator[bytes]:
    """Records a TLS 1.3 peer could send: sealed by tlslite's own code (handshake, alert,
    application data, padded, empty, over-long), then broken in every way a record can be."""
    def seal(content_type: int, payload: bytes) -> bytes:
        return _send(sealer, content_type, payload, tlslites=True)

    for content_type in (22, 21, 23, 24, 0, 99):
        payload = bytes(rng.randrange(256) for _ in range(rng.randrange(60)))
        sealer.padding_cb = None  # type: ignore[attr-defined]
        yield seal(content_type, payload)
    sealer.padding_cb = lambda length, kind, limit: min(limit, 7)  # type: ignore[attr-defined]
    yield seal(22, b"padded")
    sealer.padding_cb = None  # type: ignore[attr-defined]
    yield seal(22, b"x" * (2 ** 14 + 1))  # over the plaintext limit
    good = seal(22, b"\x14\x00\x00\x01\x00")
    yield bytes((20, 3, 3, 0, 1, 1))  # unprotected CCS
    yield bytes((21, 3, 3, 0, 2, 2, 40))  # plaintext alert
    yield bytes((21, 3, 3, 0, 3, 2, 40, 0))
    yield bytes((22, 3, 3, 0, 4, 1, 2, 3, 4))  # shorter than a tag, and of a wrong type
    yield bytes((22,)) + good[1:]  # wrong outer type
    yield good[:1] + bytes((3, 1)) + good[3:]  # wrong outer version
    yield good[:3] + bytes((0, 10)) + good[5:15]  # shorter than a tag
    flipped = bytearray(good)
    flipped[rng.randrange(5, len(good))] ^= 1 << rng.randrange(8)
    yield bytes(flipped)
    yield good  # (out of order by now: wrong sequence number)


@pytest.mark.parametrize("suite", [CipherSuite.TLS_AES_128_GCM_SHA256,
                                   CipherSuite.TLS_AES_256_GCM_SHA384,
                                   CipherSuite.TLS_CHACHA20_POLY1305_SHA256])
def test_tls13_record_path_equals_tlslites(suite: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """The engine's TLS 1.3 record path (handshake records and alerts under traffic keys)
    receives what tlslite's record layer receives: the same headers, plaintext and sequence
    numbers, or the same exception (hence the same alert), record after record, including
    tampered, misdirected, truncated and over-long ones; and it seals byte for byte what
    tlslite's seals."""
    _keep_tlslite_ciphers(monkeypatch)
    rng = random.Random(suite)
    sealer, _ = _tls13_layers(suite, client=True)
    lean, slow = _tls13_layers(suite, client=False)
    compared = 0
    for _ in range(8):
        for raw in _records(rng, sealer):
            assert _receive(lean, raw, False) == _receive(slow, raw, True), raw[:40].hex()
            compared += 1
    assert compared > 100
    a, b = _tls13_layers(suite, client=True)
    for content_type, payload in ((22, b"finished"), (21, b"\x01\x00"), (23, b""),
                                  (22, bytes(range(256)) * 70)):
        sent = [_send(a, content_type, payload, tlslites=True),
                _send(b, content_type, payload, tlslites=False)]
        assert sent[0] == sent[1] and len(sent[0]) > len(payload)


@pytest.mark.parametrize("suite", [CipherSuite.TLS_AES_128_GCM_SHA256,
                                   CipherSuite.TLS_CHACHA20_POLY1305_SHA256])
def test_declined_early_data_is_skipped_like_tlslite(suite: int,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """A server that declined 0-RTT skips the client's early records, which it cannot
    decrypt, up to max_early_data bytes (RFC 8446 4.2.10) -- by trial decryption, which
    leaves the sequence number where it was: the engine's record path does what tlslite's
    does, record by record, including the one that goes over the budget."""
    _keep_tlslite_ciphers(monkeypatch)
    sealer, _ = _tls13_layers(suite, client=True)
    early, _ = _tls13_layers(suite, client=True, secret=b"e")  # keys the server lacks
    lean, slow = _tls13_layers(suite, client=False)
    for layer in (lean, slow):
        layer.early_data_ok = True  # type: ignore[attr-defined]
        layer.max_early_data = 300  # type: ignore[attr-defined]
    stream = [_send(early, 23, b"early" * 20, tlslites=True) for _ in range(2)]
    stream.append(_send(sealer, 22, b"\x14\x00\x00\x01\x00", tlslites=True))  # skips both
    stream.append(_send(early, 23, b"late" * 20, tlslites=True))  # keys known now: refused
    first = b"".join(stream[:3])  # two early records, then one the server can open
    got = _receive(lean, first, False), _receive(slow, first, True)
    assert got[0] == got[1] and got[0][0] == 22, got  # (type, version, length, data, seq)
    assert got[0][4] == 1  # the skipped records used no sequence number
    late = _receive(lean, stream[3], False), _receive(slow, stream[3], True)
    assert late[0] == late[1] and isinstance(late[0], type), late  # an exception: refused
    # over the budget: the next undecryptable record is an error too, on both paths
    lean2, slow2 = _tls13_layers(suite, client=False)
    for layer in (lean2, slow2):
        layer.early_data_ok = True  # type: ignore[attr-defined]
        layer.max_early_data = 100  # type: ignore[attr-defined]
    big = _send(early, 23, b"x" * 120, tlslites=True)
    assert _receive(lean2, big, False) == _receive(slow2, big, True)


def test_quick_extension_parser_takes_the_hello_extensions_itself(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Well-formed server_name, key_share, pre_shared_key, session_ticket and selected
    version payloads take the quick path (tlslite's parser is not called)."""
    from tlslite.utils.codec import Parser

    def refuse(self: object, p: object) -> object:
        raise AssertionError("tlslite's parser was called")

    monkeypatch.setattr(_engine.quick, "_tl_ext_parse", refuse)
    sni = _v16(b"\x00" + _v16(b"example.com"))
    share = b"\x00\x1d" + _v16(b"k" * 32)
    psk = _v16(_v16(b"ticket") + b"\x00\x00\x00\x07") + _v16(b"\x30" + b"b" * 48)
    for ext_type, payload, server in ((0, sni, False), (51, _v16(share), False),
                                      (51, share, True), (41, psk, False), (35, b"t" * 9, False),
                                      (43, b"\x03\x04", True)):
        raw = ext_type.to_bytes(2, "big") + _v16(payload)
        ext = _engine.quick._QuickTLSExtension(server=server).parse(Parser(bytearray(raw)))
        assert ext.extType == ext_type and ext.write() == raw


def _parsed_client_hello(client_ctx: aiotls.TLSContext) -> Any:
    """A ClientHello from ``client_ctx``, parsed as a server parses it."""
    record = aiotls.TLSConnection(client_ctx, server_hostname="localhost").data_to_send()
    parser = _engine.codec.FastParser(bytearray(record[5:]))
    parser.get(1)
    return _engine.quick._QUICK_MESSAGES["ClientHello"](False).parse(parser)


def _replace_extension(hello: Any, ext: Any) -> None:
    hello.extensions = [ext if e.extType == ext.extType else e for e in hello.extensions]


@pytest.mark.speedups
@pytest.mark.parametrize("key_type", ["ecdsa-p256", "rsa2048", "ed25519"])
@pytest.mark.parametrize("version", [(3, 4), (3, 3)])
def test_certificate_choice_is_tlslites(pki: PKI, key_type: str,
                                        version: tuple[int, int]) -> None:
    """The server's choice of suite, signature scheme and certificate, remembered per
    context, is tlslite's for each hello: whatever the hello's suites, groups and signature
    algorithms, asked again and in any order; a hello nothing fits fails as in tlslite."""
    server = aiotls.TLSConnection(pki.server_context(key_type), server_side=True)  # type: ignore[arg-type]
    tl = server._engine._tl
    prepared = _engine.settings._prepare(server.context)
    settings = prepared.server_settings._aiotls_validated
    hellos = []
    # the default hello, then one thing changed at a time: its suites, groups, signatures
    for suites, groups, schemes in (
            (None, None, None), ([0x1301], None, None), ([0x1303, 0x1301], None, None),
            (None, [GroupName.secp384r1], None), (None, [GroupName.x25519], None),
            (None, None, [(8, 4)]), (None, None, [(4, 3)]), (None, None, [(8, 7)]),
            (None, None, [(5, 3), (8, 5)])):
        hello = _parsed_client_hello(pki.client_context())
        if suites is not None:
            hello.cipher_suites = suites
        # (a received hello's extensions may be shared with other hellos: replaced, not
        # changed)
        if groups is not None:
            _replace_extension(hello, tlslite.extensions.SupportedGroupsExtension().create(groups))
        if schemes is not None:
            _replace_extension(hello, tlslite.extensions.SignatureAlgorithmsExtension().create(
                schemes))
        hellos.append(hello)
    suites = list(CipherSuite.tls13Suites) if version == (3, 4) \
        else [0xC02B, 0xC02F, 0xC02C, 0xC030]  # (ECDHE-ECDSA/RSA with AES-GCM)
    rebound = _engine.base._ReboundTLSConnection._server_select_certificate

    def choose(how: Callable[..., Any], hello: Any) -> Any:
        try:
            return how(settings, hello, suites, prepared.cert_chain, prepared.private_key,
                       version)
        except Exception as exc:
            return type(exc)

    expected = [choose(lambda *a: rebound(tl, *a), hello) for hello in hellos]
    assert len({str(e) for e in expected}) > 1  # (the hellos get different answers)
    for order in (hellos, hellos[::-1], hellos):
        got = [choose(tl._server_select_certificate, hello) for hello in order]
        assert got == (expected if order is hellos else expected[::-1])
