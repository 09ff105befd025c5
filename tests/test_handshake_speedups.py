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
from hypothesis import given, settings
from hypothesis import strategies as st
from tlslite.constants import HashAlgorithm, SignatureAlgorithm, SignatureScheme
from tlslite.handshakehashes import HandshakeHashes
from tlslite.keyexchange import KeyExchange
from tlslite.utils import cryptomath

from aiotls import _crypto, _engine
from tests.helpers import PKI, connect, handshake

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
