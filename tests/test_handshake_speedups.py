"""Handshake speed-ups of issue 14, each checked against tlslite-ng's own code.

Every replacement here must compute what tlslite computes for the same inputs (a
differential test), and the tests marked ``speedups`` check that a real handshake takes
the faster path (deselected when ``AIOTLS_SPEEDUPS=0``, where tlslite's code runs).
"""

from __future__ import annotations

import os
import ssl

import pytest
import tlslite.keyexchange
from cryptography.hazmat.primitives import serialization
from hypothesis import given, settings
from hypothesis import strategies as st
from tlslite.constants import HashAlgorithm, SignatureAlgorithm, SignatureScheme
from tlslite.handshakehashes import HandshakeHashes
from tlslite.keyexchange import KeyExchange
from tlslite.messages import SessionTicketPayload
from tlslite.utils import cryptomath
from tlslite.x509 import X509
from tlslite.x509certchain import X509CertChain

import aiotls
from aiotls import _crypto, _engine
from tests.certs import self_signed
from tests.helpers import PKI, connect, handshake, pump

# --- CertificateVerify helpers with the remembered enums -----------------------------------

#: Every signature scheme tlslite names, TLS 1.2 (hash, signature) pairs it does not name,
#: and pairs no table holds.
_SCHEMES = sorted({v for k, v in vars(SignatureScheme).items()
                   if not k.startswith("_") and isinstance(v, tuple)}
                  | {(HashAlgorithm.sha256, SignatureAlgorithm.rsa),
                     (HashAlgorithm.sha1, SignatureAlgorithm.dsa),
                     (HashAlgorithm.sha512, SignatureAlgorithm.ecdsa),
                     (HashAlgorithm.sha384, 77)})


def _transcript() -> HandshakeHashes:
    hashes = HandshakeHashes()
    hashes.update(bytearray(os.urandom(300)))
    return hashes


@pytest.mark.parametrize("version", [(3, 3), (3, 4)])
def test_certificate_verify_bytes_equal_tlslites(version: tuple[int, int]) -> None:
    fast = _engine.base._FastKeyExchange
    transcript = _transcript()
    assert len(_SCHEMES) > 15
    for scheme in _SCHEMES:
        for prf in ("sha256", "sha384"):
            for peer in (b"client", b"server"):
                args = (version, transcript, scheme, None, None, None, prf, peer)
                try:
                    expected = KeyExchange.calcVerifyBytes(*args)
                except Exception as exc:  # (tlslite refuses some pairs: so must the copy)
                    with pytest.raises(type(exc)):
                        fast.calcVerifyBytes(*args)
                    continue
                for _ in range(2):  # the second lookup is served from the remembered names
                    assert fast.calcVerifyBytes(*args) == expected, (version, scheme)


def test_certificate_verify_helpers_are_tlslites_code() -> None:
    fast = _engine.base._FastKeyExchange
    for name in ("calcVerifyBytes", "makeCertificateVerify"):
        mine = vars(fast)[name].__func__
        theirs = vars(KeyExchange)[name].__func__
        assert mine.__code__ is theirs.__code__
        assert mine.__globals__ is not vars(tlslite.keyexchange)
        assert mine.__globals__["KeyExchange"] is fast
    # tlslite's own module is untouched
    assert tlslite.keyexchange.SignatureScheme is tlslite.constants.SignatureScheme


@pytest.mark.speedups
def test_tls13_certificate_verify_uses_the_remembered_names(pki: PKI) -> None:
    sctx = pki.server_context()
    sctx.verify_mode = ssl.CERT_REQUIRED
    sctx.load_verify_locations(cafile=pki.ca_file)
    cctx = pki.client_context()
    cctx.load_cert_chain(pki.client[1], pki.client[2])
    # warm the remembered names, then count tlslite's own lookups in a fresh handshake
    connect(cctx, sctx)
    calls: list[object] = []
    original = vars(SignatureScheme)["toRepr"].__func__

    def counting(cls: type, value: object, blacklist: object = None) -> object:
        calls.append(value)
        return original(cls, value, blacklist)

    mp = pytest.MonkeyPatch()
    mp.setattr(SignatureScheme, "toRepr", classmethod(counting))
    try:
        client, server = handshake(cctx, sctx)
    finally:
        mp.undo()
    assert client.version() == "TLSv1.3" and server.getpeercert() is not None
    assert calls == []


# --- HKDF-Expand-Label with the HMAC inline ------------------------------------------------


@pytest.mark.parametrize("hash_name", ["sha256", "sha384", "sha512"])
def test_one_block_hkdf_expand_label_equals_tlslites(hash_name: str) -> None:
    size = {"sha256": 32, "sha384": 48, "sha512": 64}[hash_name]
    for secret_size in (0, size, 64, 128, 129, 200):  # up to and past the hash's block size
        secret = os.urandom(secret_size)
        for length in (1, 12, 16, 32, size, size + 1, 3 * size):
            context = os.urandom(length % 50)
            expected = cryptomath.HKDF_expand_label(bytearray(secret), bytearray(b"key"),
                                                    bytearray(context), length, hash_name)
            for kind in (bytes, bytearray):
                assert _crypto.hkdf_expand_label(kind(secret), b"key", kind(context), length,
                                                 hash_name) == expected


def test_hkdf_label_context_longer_than_its_length_byte_is_refused() -> None:
    with pytest.raises(ValueError, match="255"):
        _crypto.hkdf_expand_label(b"k" * 32, b"key", b"c" * 256, 16, "sha256")


# --- the message Parser's reads in one call each ----------------------------------------------

_READS = [("get", (0,)), ("get", (1,)), ("get", (2,)), ("get", (3,)), ("get", (4,)),
          ("getFixBytes", (3,)), ("getVarBytes", (0,)), ("getVarBytes", (1,)),
          ("getVarBytes", (2,)), ("getVarBytes", (3,)), ("getVarList", (1, 1)),
          ("getVarList", (2, 1)), ("getVarList", (2, 2)), ("getVarList", (3, 1)),
          ("getVarList", (4, 2)), ("getFixList", (1, 3)), ("getFixList", (2, 2)),
          ("getFixList", (2, 0)), ("getFixList", (3, 2)), ("getVarTupleList", (1, 2, 2)),
          ("startLengthCheck", (2,)), ("atLengthCheck", ()), ("stopLengthCheck", ()),
          ("getRemainingLength", ())]


def _read_all(parser: object, reads: list[tuple[str, tuple[int, ...]]]) -> list[object]:
    """What each read returns (or raises), and the index after it."""
    out: list[object] = []
    for name, args in reads:
        try:
            value: object = getattr(parser, name)(*args)
        except Exception as exc:  # (the exception is part of what must be equal)
            value = (type(exc), str(exc))
        out.append((value, type(value), parser.index))  # type: ignore[attr-defined]
    return out


@given(data=st.binary(max_size=40),
       reads=st.lists(st.sampled_from(_READS), max_size=12),
       kind=st.sampled_from([bytes, bytearray]))
@settings(max_examples=600, deadline=None)
def test_fast_parser_reads_like_tlslites(data: bytes, reads: list[tuple[str, tuple[int, ...]]],
                                         kind: type) -> None:
    from tlslite.utils.codec import Parser

    assert _read_all(_engine.codec.FastParser(kind(data)), reads) == \
        _read_all(Parser(kind(data)), reads)


def test_fast_parser_reads_long_lists_like_tlslites() -> None:
    from tlslite.utils.codec import Parser

    for size in (0, 2, 100, 512, 4096, 65534):
        body = os.urandom(size)
        for length_length in (2, 3):
            data = bytearray(len(body).to_bytes(length_length, "big") + body)
            reads = [("getVarList", (2, length_length)), ("getRemainingLength", ())]
            assert _read_all(_engine.codec.FastParser(data), reads) == \
                _read_all(Parser(data), reads)
            truncated = data[:-1] if size else data + b"\x00"
            assert _read_all(_engine.codec.FastParser(truncated), reads) == \
                _read_all(Parser(truncated), reads)


# --- the connection's version read in one step ---------------------------------------------


def test_connection_version_reads_and_sets_like_tlslites() -> None:
    from tlslite.tlsrecordlayer import TLSRecordLayer

    from aiotls._engine.driver import _MemorySocket

    tl = _engine.tlsconn._TLSLiteConnection(_MemorySocket())
    reference = TLSRecordLayer(_MemorySocket())
    for value in [(0, 0), (3, 0), (3, 1), (3, 3), (3, 4), (3, 3), (127, 28)]:
        tl.version = value
        reference.version = value
        assert tl.version == TLSRecordLayer.version.fget(tl) == reference.version == value
        for attr in ("_version", "tls13record"):
            assert getattr(tl._recordLayer, attr) == getattr(reference._recordLayer, attr)
        assert tl._recordLayer._recordSocket.version == \
            reference._recordLayer._recordSocket.version


# --- a received ClientHello parsed in one pass -----------------------------------------------


def _plain(value: object) -> object:
    """``value`` as nested builtins, objects by class name and attributes."""
    if isinstance(value, list | tuple):
        return type(value).__name__, [_plain(item) for item in value]
    if hasattr(value, "__dict__") and not isinstance(value, type):
        return type(value).__name__, {k: _plain(v) for k, v in vars(value).items()}
    return type(value).__name__, value


def _client_hellos(pki: PKI) -> list[bytes]:
    """ClientHello bodies (after the handshake type byte) from aiotls in several setups and
    from OpenSSL."""
    import aiotls

    hellos = []
    sctx = pki.server_context()
    plain = pki.client_context()
    alpn = pki.client_context()
    alpn.set_alpn_protocols(["h2", "http/1.1"])
    with_cert = pki.client_context()
    with_cert.load_cert_chain(pki.client[1], pki.client[2])
    with_cert.check_hostname = False
    tls12 = pki.client_context()
    tls12.maximum_version = ssl.TLSVersion.TLSv1_2
    first, _ = connect(plain, sctx)
    setups: list[tuple[aiotls.TLSContext, object, str | None]] = [
        (plain, None, "localhost"), (alpn, None, "example.org"), (with_cert, None, None),
        (tls12, None, "localhost"), (plain, first.session, "localhost"),
        (plain, None, "127.0.0.1")]
    for ctx, session, name in setups:
        conn = aiotls.TLSConnection(ctx, server_hostname=name, session=session)  # type: ignore[arg-type]
        hellos.append(conn.data_to_send()[6:])
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    stdlib = ssl.create_default_context(cafile=pki.ca_file)
    obj = stdlib.wrap_bio(incoming, outgoing, server_hostname="localhost")
    with pytest.raises(ssl.SSLWantReadError):
        obj.do_handshake()
    hellos.append(outgoing.read()[6:])
    return hellos


def _parse_hello_both(body: bytes) -> tuple[object, object]:
    from tlslite.messages import ClientHello
    from tlslite.utils.codec import Parser

    quick = _engine.quick
    fast_parse = _engine.hellos.parse_client_hello(
        quick._QuickTLSExtension, quick._table_for, quick._made_quick, _engine.codec.FastParser)
    outcomes = []
    for hello, parse, parser in (
            (ClientHello(), ClientHello.parse, Parser(bytearray(body))),
            (quick._QUICK_MESSAGES["ClientHello"](), fast_parse,
             _engine.codec.FastParser(bytearray(body)))):
        try:
            parse(hello, parser)
        except Exception as exc:  # (both must raise the same)
            outcomes.append((type(exc), str(exc)))
        else:
            outcomes.append((_plain(hello), parser.index))
    return outcomes[0], outcomes[1]


def test_one_pass_client_hello_parse_equals_tlslites(pki: PKI) -> None:
    """Real ClientHellos (aiotls's in several setups, OpenSSL's), truncated, with bytes
    changed and lengths broken: the same message object (extension classes and attributes),
    the same bytes consumed, or tlslite's exception."""
    import random

    rng = random.Random(14)
    hellos = _client_hellos(pki)
    assert len(hellos) == 7
    compared = 0
    for body in hellos:
        slow, fast = _parse_hello_both(body)
        assert fast == slow and isinstance(slow[0], tuple), body.hex()
        variants = [body[:cut] for cut in rng.sample(range(len(body)), 40)]
        for sid_length in (0, 31, 32, 33, 0xFF):  # (byte 37: the session_id's length)
            variants.append(body[:37] + bytes((sid_length,)) + body[38:])
        for _ in range(300):
            changed = bytearray(body)
            for _ in range(rng.choice((1, 1, 2, 3))):
                changed[rng.randrange(len(body))] = rng.choice(
                    (0, 1, 0xFF, rng.randrange(256), changed[rng.randrange(len(body))]))
            variants.append(bytes(changed))
        for variant in variants:
            slow, fast = _parse_hello_both(variant)
            assert fast == slow, variant.hex()
            compared += 1
    assert compared > 2000


def test_one_pass_client_hello_parse_keeps_objects_apart(pki: PKI) -> None:
    """Two parses share no mutable attribute (the quick parser copies from prototypes),
    except the extensions shared whole, which refuse writes (see test_footprint.py)."""
    body = _client_hellos(pki)[1]
    parse = _engine.quick._QUICK_MESSAGES["ClientHello"].parse
    first, second = (parse(_engine.quick._QUICK_MESSAGES["ClientHello"](),
                           _engine.codec.FastParser(bytearray(body))) for _ in range(2))
    assert len(first.extensions) == len(second.extensions) > 8
    apart = 0
    for one, other in zip(first.extensions, second.extensions, strict=True):
        assert type(one) is type(other)
        if one is other:
            assert one.extType in _engine.hellos.SHARED_TYPES
            with pytest.raises(TypeError):
                one.extType = one.extType
            continue
        apart += 1
        for name, value in vars(one).items():
            if isinstance(value, bytearray | list | dict):
                assert value is not vars(other)[name], (type(one).__name__, name)
    assert apart >= 2  # (key_share, pre_shared_key, ...)


# --- the defragmenter's handshake message size ---------------------------------------------


@given(data=st.binary(max_size=12) | st.builds(
    lambda n, body: bytes((1,)) + n.to_bytes(3, "big") + body,
    st.integers(0, 20), st.binary(max_size=24)))
@settings(max_examples=500, deadline=None)
def test_handshake_message_size_equals_tlslites(data: bytes) -> None:
    from tlslite.constants import ContentType
    from tlslite.defragmenter import Defragmenter

    reference = Defragmenter()
    reference.add_dynamic_size(ContentType.handshake, 1, 3)
    tlslites = reference.decoders[ContentType.handshake]
    for kind in (bytes, bytearray):
        assert _engine.tlsconn._handshake_size(kind(data)) == tlslites(kind(data))


@pytest.mark.speedups
def test_connections_use_the_quick_handshake_size() -> None:
    from tlslite.constants import ContentType

    from aiotls._engine.driver import _MemorySocket

    tl = _engine.tlsconn._TLSLiteConnection(_MemorySocket())
    assert tl._defragmenter.decoders[ContentType.handshake] is _engine.tlsconn._handshake_size


# --- resumption: the ticket payload, the PSK's early secrets -------------------------------


def _payloads() -> st.SearchStrategy[SessionTicketPayload]:
    def make(secret: bytes, suite: int, nonce: bytes, when: int, etm: bool, ems: bool,
             name: bytes, chain: bool) -> SessionTicketPayload:
        payload = SessionTicketPayload().create(
            bytearray(secret), (3, 4), suite, when, bytearray(nonce),
            encrypt_then_mac=etm, extended_master_secret=ems, server_name=bytearray(name))
        if chain:
            payload.client_cert_chain = _TEST_CHAIN
            payload.version = 2
        return payload
    return st.builds(make, st.binary(max_size=64), st.integers(0, 2**16 - 1),
                     st.binary(max_size=255), st.integers(0, 2**64 - 1), st.booleans(),
                     st.booleans(), st.binary(max_size=300), st.booleans())


def _test_chain() -> X509CertChain:
    cert = X509()
    cert.parseBinary(bytearray(
        self_signed("payload.test").cert.public_bytes(serialization.Encoding.DER)))
    return X509CertChain([cert])


_TEST_CHAIN = _test_chain()


def _attributes(payload: SessionTicketPayload) -> dict[str, object]:
    found = {name: getattr(payload, name) for name in (
        "version", "master_secret", "protocol_version", "cipher_suite", "nonce",
        "creation_time", "encrypt_then_mac", "extended_master_secret", "server_name")}
    found["types"] = [type(v).__name__ for v in found.values()]
    found["chain"] = payload.client_cert_chain
    return found


@settings(max_examples=300, deadline=None)
@given(_payloads(), st.data())
def test_ticket_payload_read_equals_tlslites(payload: SessionTicketPayload,
                                            data: st.DataObject) -> None:
    """tickets._lean_payload reads what tlslite's parse reads, or leaves it to tlslite."""
    from tlslite.utils.codec import Parser

    from aiotls._engine.tickets import _lean_payload

    written = bytes(payload.write())
    cut = data.draw(st.integers(0, len(written)))
    flips = data.draw(st.lists(st.tuples(st.integers(0, max(len(written) - 1, 0)),
                                         st.integers(1, 255)), max_size=2))
    for plain in (written, written[:cut], written + b"\x00",
                  _flipped(written, flips)):
        ours = _lean_payload(plain)
        try:
            theirs = SessionTicketPayload().parse(Parser(bytearray(plain)))
        except Exception:  # (tlslite's parse fails in many ways; the ticket is then unused)
            theirs = None
        if ours is not None:
            assert theirs is not None and _attributes(ours) == _attributes(theirs)
    if payload.version == 2 and payload.client_cert_chain is None:
        assert _lean_payload(written) is not None  # (the layout aiotls writes)


def _flipped(data: bytes, flips: list[tuple[int, int]]) -> bytes:
    out = bytearray(data)
    for at, mask in flips:
        if at < len(out):
            out[at] ^= mask
    return bytes(out)


@pytest.mark.parametrize("hash_name", ["sha256", "sha384"])
def test_early_secrets_equal_tlslites_binder_and_schedule(hash_name: str) -> None:
    from tlslite.handshakehelpers import HandshakeHelpers
    from tlslite.utils.cryptomath import derive_secret, secureHMAC

    from aiotls._engine import server13

    size = 32 if hash_name == "sha256" else 48
    psk = bytearray(os.urandom(size))
    hashes = _transcript()
    for external, label in ((False, b"res binder"), (True, b"ext binder")):
        binder_key, derived = server13.early_secrets(psk, hash_name, size, label)
        expected = HandshakeHelpers._calc_binder(hash_name, psk, hashes, external)
        assert _crypto.hmac_digest(binder_key, hashes.digest(hash_name), hash_name) == expected
    early = secureHMAC(bytearray(size), psk, hash_name)
    assert derived == derive_secret(early, bytearray(b"derived"), None, hash_name)
    zeros_early = secureHMAC(bytearray(size), bytearray(size), hash_name)
    assert server13.no_psk_derived(hash_name, size) == \
        derive_secret(zeros_early, bytearray(b"derived"), None, hash_name)


@pytest.mark.speedups
def test_a_client_derives_a_tickets_secrets_once(pki: PKI,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """The binder key and handshake secret input of a ticket are kept on the ticket:
    resuming with it again derives nothing from its PSK; another session's secret
    (the same ticket object carried on) derives them afresh."""
    from aiotls._engine import server13, tickets

    calls: list[bytes] = []
    real = tickets.early_secrets

    def counting(psk: bytes, *args: object) -> tuple[bytes, bytes]:
        calls.append(bytes(psk))
        return real(psk, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(tickets, "early_secrets", counting)
    client_ctx, server_ctx = pki.client_context(), pki.server_context()
    first = aiotls.TLSConnection(client_ctx, server_hostname="localhost")
    server = aiotls.TLSConnection(server_ctx, server_side=True)
    pump(first, server)
    server.send_data(b"x")
    pump(first, server)
    session = first.session
    assert session is not None
    for _ in range(3):
        client = aiotls.TLSConnection(client_ctx, server_hostname="localhost", session=session)
        server = aiotls.TLSConnection(server_ctx, server_side=True)
        pump(client, server)
        assert client.session_reused and server.session_reused
    assert len(calls) == 1 and server13.early_secrets is real
    ticket = session._state.tickets[0]  # type: ignore[attr-defined]
    kept = ticket._aiotls_early
    other = type("S", (), {"resumptionMasterSecret": bytearray(os.urandom(48))})()
    assert tickets.ticket_secrets(other, ticket, "sha384", 48) != kept[1]
    assert len(calls) == 2
