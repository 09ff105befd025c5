"""The OpenSSL-backed primitives are really the ones in use.

Every pure-Python implementation the engine could fall back to is replaced by a
function that fails the test; full handshakes and data transfer must still
work, against aiotls and against the stdlib ``ssl`` module (OpenSSL).
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Iterator

import ecdsa.ecdh
import ecdsa.eddsa
import ecdsa.keys
import pytest
import tlslite.utils.python_aesgcm
import tlslite.utils.python_chacha20_poly1305
import tlslite.utils.x25519
from tlslite.utils.python_rsakey import Python_RSAKey

import aiotls
from aiotls.events import DataReceived
from tests.helpers import PKI, VERSIONS, handshake, pump
from tests.stdlib_peer import StdlibPeer, run


class PurePythonUsed(AssertionError):
    pass


@pytest.fixture
def no_pure_python(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    used: list[str] = []

    def poison(target: object, name: str) -> None:
        label = f"{getattr(target, '__name__', target)}.{name}"

        def fail(*args: object, **kwargs: object) -> None:
            used.append(label)
            raise PurePythonUsed(f"pure-Python {label} was called")

        monkeypatch.setattr(target, name, fail)

    poison(tlslite.utils.x25519, "_x25519_generic")  # X25519 and X448
    poison(tlslite.utils.python_aesgcm, "new")
    poison(tlslite.utils.python_chacha20_poly1305, "new")
    poison(ecdsa.keys.SigningKey, "sign_digest_deterministic")
    poison(ecdsa.keys.SigningKey, "sign_deterministic")
    poison(ecdsa.keys.VerifyingKey, "verify_digest")
    poison(ecdsa.keys.VerifyingKey, "verify")
    poison(ecdsa.ecdh.ECDH, "generate_sharedsecret_bytes")
    poison(ecdsa.eddsa.PrivateKey, "sign")
    poison(ecdsa.eddsa.PublicKey, "verify")
    poison(Python_RSAKey, "_rawPrivateKeyOp")
    poison(Python_RSAKey, "_rawPublicKeyOp")
    yield used
    assert used == [], f"pure-Python primitives were used: {used}"


CASES = [
    (version, key_type, group)
    for version in VERSIONS
    for key_type in ("ecdsa-p256", "ecdsa-p384", "rsa2048", "ed25519")
    for group in ("x25519", "secp256r1", "secp384r1", "secp521r1", "x448")
]


@pytest.mark.speedups
@pytest.mark.parametrize(("version", "key_type", "group"), CASES)
def test_handshake_and_data_use_openssl_only(pki: PKI, no_pure_python: list[str], version: str,
                                             key_type: str, group: str) -> None:
    ctx = pki.client_context()
    ctx.maximum_version = VERSIONS[version]
    # TLS 1.2 ECDSA certificates also need their curve among the supported groups
    ctx.set_groups([group, "secp256r1", "secp384r1"])
    server_ctx = pki.server_context(key_type)  # type: ignore[arg-type]
    server_ctx.set_groups(["x25519", "secp256r1", "secp384r1", "secp521r1", "x448"])
    client, server = handshake(ctx, server_ctx)
    assert client.version() == version, client.error or server.error
    assert client.group == group
    blob = os.urandom(50_000)
    client.send_data(blob)
    server.send_data(blob)
    pump(client, server)
    for conn in (client, server):
        got = b"".join(e.data for e in conn.events() if isinstance(e, DataReceived))
        assert got == blob


@pytest.mark.speedups
@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("key_type", ["ecdsa-p256", "rsa2048", "ed25519"])
def test_interop_with_openssl_uses_openssl_only(pki: PKI, no_pure_python: list[str],
                                                version: str, key_type: str) -> None:
    # aiotls as the client, verifying an OpenSSL server's signature
    ctx = pki.client_context()
    ctx.maximum_version = VERSIONS[version]
    peer = StdlibPeer(pki.stdlib_server_context(key_type), server_side=True)  # type: ignore[arg-type]
    conn = aiotls.TLSConnection(ctx, server_hostname="localhost")
    run(conn, peer)
    assert conn.version() == version, conn.error
    # aiotls as the server, signing for an OpenSSL client
    server = aiotls.TLSConnection(pki.server_context(key_type), server_side=True)  # type: ignore[arg-type]
    client_ctx = pki.stdlib_client_context()
    client_ctx.maximum_version = VERSIONS[version]
    peer = StdlibPeer(client_ctx, server_side=False, server_hostname="localhost")
    run(server, peer)
    assert server.version() == version, server.error
    assert peer.error is None


@pytest.mark.speedups
def test_client_certificate_signing_uses_openssl(pki: PKI, no_pure_python: list[str]) -> None:
    server_ctx = pki.server_context()
    server_ctx.verify_mode = ssl.CERT_REQUIRED
    server_ctx.load_verify_locations(cafile=pki.ca_file)
    for version in VERSIONS.values():
        ctx = pki.client_context()
        ctx.maximum_version = version
        ctx.load_cert_chain(pki.client[1], pki.client[2])
        client, server = handshake(ctx, server_ctx)
        assert server.getpeercert() is not None, server.error


@pytest.mark.parametrize(("hash_name", "size"), [("sha256", 32), ("sha384", 48)])
def test_hkdf_expand_label_matches_tlslite(hash_name: str, size: int) -> None:
    """aiotls's C-HMAC HKDF-Expand-Label (traffic keys) equals tlslite's reference one."""
    from tlslite.utils.cryptomath import HKDF_expand_label

    from aiotls._crypto import hkdf_expand_label

    for _ in range(20):
        secret = os.urandom(size)
        context = os.urandom(size // 2)
        for label, length in ((b"key", 16), (b"key", 32), (b"iv", 12), (b"finished", size),
                              (b"traffic upd", size), (b"exporter", 2 * size + 7)):
            expected = bytes(HKDF_expand_label(bytearray(secret), label, bytearray(context),
                                               length, hash_name))
            assert hkdf_expand_label(secret, label, context, length, hash_name) == expected


@pytest.mark.parametrize(("hash_name", "size"), [("sha256", 32), ("sha384", 48),
                                                 ("sha512", 64)])
def test_hkdf_expand_labels_of_one_secret_match_tlslite(hash_name: str, size: int) -> None:
    """Several labels of one secret with the HMAC states made once: each is tlslite's,
    for secrets shorter than, as long as and longer than a hash block, and labels over
    one output block (the per-label path)."""
    from tlslite.utils.cryptomath import HKDF_expand_label

    from aiotls._crypto import hkdf_expand_labels

    for secret_size in (size, 16, 200):
        secret = os.urandom(secret_size)
        for labels in (((b"key", b"", 16), (b"iv", b"", 12)),
                       ((b"c ap traffic", os.urandom(size), size),
                        (b"s ap traffic", os.urandom(size), size), (b"exp master", b"", size)),
                       ((b"key", b"", 32), (b"exporter", b"x", 2 * size + 7))):
            expected = [bytes(HKDF_expand_label(bytearray(secret), label, bytearray(context),
                                                length, hash_name))
                        for label, context, length in labels]
            assert hkdf_expand_labels(secret, labels, hash_name) == expected


@pytest.mark.parametrize("hash_name", ["sha256", "sha384", "sha512", "sha1"])
def test_hmac_digest_matches_the_stdlib(hash_name: str) -> None:
    import hmac

    from aiotls._crypto import hmac_digest

    for key_len in (0, 1, 32, 48, 64, 65, 128, 129, 300):
        for msg_len in (0, 1, 63, 64, 200):
            key, msg = os.urandom(key_len), os.urandom(msg_len)
            assert hmac_digest(key, msg, hash_name) == hmac.digest(key, msg, hash_name)
            assert hmac_digest(bytearray(key), bytearray(msg), hash_name) == \
                hmac.digest(key, msg, hash_name)


def test_aead_objects_are_made_only_for_keys_that_are_used(pki: PKI) -> None:
    """tlslite's record layer gets an AEAD cipher per direction and key; OpenSSL's cipher
    object is made on first use, so the traffic keys that aiotls's own record layer takes
    over cost nothing there.  Wrong key sizes still fail at once; a cipher made late
    encrypts and decrypts like one made at once."""
    from aiotls import _crypto

    made: list[str] = []

    def counting(name: str) -> object:
        factory = _crypto._AEAD_FACTORIES[name]
        return lambda key: (made.append(name), factory(key))[1]

    client_ctx = pki.client_context()
    client_ctx.maximum_version = ssl.TLSVersion.TLSv1_3
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(_crypto, "_AEAD_FACTORIES",
                   {name: counting(name) for name in _crypto._AEAD_FACTORIES})
        client, server = handshake(client_ctx, pki.server_context())
        client.send_data(b"ping")
        server.receive_data(client.data_to_send())
        assert b"".join(e.data for e in server.events() if isinstance(e, DataReceived)) \
            == b"ping"
    # One cipher object per key: handshake and application keys, each way, on each side,
    # all held by aiotls's record layer; tlslite's cipher objects for the same keys (it
    # computes them) never make one, since no record goes through them.
    assert len(made) == 8, made
    with pytest.raises(ValueError, match="key of"):
        _crypto.AEADCipher("chacha20-poly1305", b"k" * 16)
    with pytest.raises(KeyError):
        _crypto.AEADCipher("rot13", b"k" * 16)
    late, early = _crypto.AEADCipher("aes128gcm", b"k" * 16), _crypto.AEADCipher(
        "aes128gcm", b"k" * 16)
    early.seal(b"n" * 12, b"", b"")
    sealed = late.seal(b"n" * 12, b"plaintext", b"aad")
    assert sealed == early.seal(b"n" * 12, b"plaintext", b"aad")
    assert early.open(b"n" * 12, sealed, b"aad") == b"plaintext"
    assert late.open(b"n" * 12, sealed[:-1] + b"!", b"aad") is None
