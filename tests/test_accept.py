"""The server's ClientHello checks of ``_engine/accept.py`` against tlslite-ng's own.

Each handshake runs twice with the same randomness: once with aiotls accepting the
ClientHello, once through tlslite-ng's ``_serverGetClientHello``.  Every byte either side
sends must be the same, and so must both connections' state and error.  The hellos are
real clients' (aiotls, OpenSSL) and the same hellos rewritten: every check tlslite makes
has an edit that fails it, and those must go to tlslite (its alert, its text), while the
hellos tlslite accepts must mostly be accepted here too.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import aiotls
from tests.helpers import (
    PKI,
    HelloParts,
    Seeded,
    lean_path_taken,
    same_both_ways,
    seeded_ticket,
)

pytestmark = pytest.mark.speedups  # (with the speed-ups off tlslite's method runs always)

Edit = Callable[[HelloParts], None]


def _replace(kind: int, data: bytes) -> Edit:
    def edit(hello: HelloParts) -> None:
        found = [i for i, (k, _) in enumerate(hello.extensions) if k == kind]
        if found:
            hello.extensions[found[0]] = (kind, data)
        else:
            hello.extensions.insert(0, (kind, data))
    return edit


def _drop(kind: int) -> Edit:
    def edit(hello: HelloParts) -> None:
        hello.extensions[:] = [(k, d) for k, d in hello.extensions if k != kind]
    return edit


def _add(kind: int, data: bytes) -> Edit:
    def edit(hello: HelloParts) -> None:
        hello.extensions.insert(0, (kind, data))
    return edit


def _first(kind: int) -> Edit:
    def edit(hello: HelloParts) -> None:
        moved = [(k, d) for k, d in hello.extensions if k == kind]
        hello.extensions[:] = moved + [(k, d) for k, d in hello.extensions if k != kind]
    return edit


def _set(field: str, value: bytes) -> Edit:
    def edit(hello: HelloParts) -> None:
        setattr(hello, field, value)
    return edit


def _names(*names: bytes) -> bytes:
    entries = b"".join(b"\x00" + len(n).to_bytes(2, "big") + n for n in names)
    return len(entries).to_bytes(2, "big") + entries


def _list(*items: bytes) -> bytes:
    entries = b"".join(bytes((len(i),)) + i for i in items)
    return len(entries).to_bytes(2, "big") + entries


#: name -> (edit, whether tlslite accepts it and aiotls must too; None: either)
EDITS: dict[str, tuple[Edit, bool | None]] = {
    "as sent": (lambda hello: None, True),
    "no SNI": (_drop(0), True),
    "no ALPN": (_drop(16), True),
    "post-handshake auth offered": (_add(49, b""), True),
    "padding": (_add(21, bytes(20)), True),
    "unknown extension": (_add(0x1234, b"abc"), True),
    "no record_size_limit": (_drop(28), True),
    "record_size_limit 64": (_replace(28, b"\x00\x40"), True),
    "no session_ticket": (_drop(35), True),
    "no ec_point_formats": (_drop(11), True),
    "no cert_type": (_drop(9), True),
    "extensions in another order": (_first(43), True),
    "TLS 1.2 offered too": (_replace(43, b"\x04\x03\x04\x03\x03"), True),
    "fallback SCSV": (lambda hello: setattr(hello, "suites", (
        len(hello.suites) - 2 + 2).to_bytes(2, "big") + hello.suites[2:] + b"\x56\x00"), None),
    # each check tlslite makes, failed
    "post-handshake auth with data": (_add(49, b"\x00"), False),
    "early data": (_add(42, b""), False),
    "heartbeat": (_add(15, b"\x01"), False),
    "heartbeat of another mode": (_add(15, b"\x07"), False),
    "record_size_limit 63": (_replace(28, b"\x00\x3f"), False),
    "record_size_limit malformed": (_replace(28, b"\x01"), False),
    "a session ticket": (_replace(35, bytes(range(40))), False),
    "extended master secret with data": (_add(23, b"\x00"), False),
    "two host names": (_replace(0, _names(b"a.test", b"b.test")), False),
    "an invalid host name": (_replace(0, _names(b"bad name!")), False),
    "a non-ASCII host name": (_replace(0, _names("é.test".encode())), False),
    "an empty host name": (_replace(0, _names(b"")), False),
    "an empty server name list": (_replace(0, b"\x00\x00"), False),
    "no server name": (_replace(0, b""), False),
    "ALPN with an empty name": (_replace(16, _list(b"h2", b"")), False),
    "ALPN with no names": (_replace(16, b"\x00\x00"), False),
    "empty signature_algorithms": (_replace(13, b"\x00\x00"), False),
    "no signature_algorithms": (_drop(13), None),
    "no key_share": (_drop(51), False),
    "no supported_groups": (_drop(10), False),
    "empty supported_groups": (_replace(10, b"\x00\x00"), False),
    "key share for a group not listed": (_replace(10, b"\x00\x02\x00\x18"), False),
    "a forbidden group, TLS 1.3 only": (
        lambda hello: (_replace(10, b"\x00\x06\x00\x1d\x00\x17\x00\x01")(hello),
                       _replace(43, b"\x02\x03\x04")(hello)), False),
    "a forbidden group, TLS 1.2 too": (_replace(10, b"\x00\x06\x00\x1d\x00\x17\x00\x01"),
                                       True),
    "an FFDHE group first": (_replace(10, b"\x00\x06\x01\x00\x00\x1d\x00\x17"), None),
    "only FFDHE groups we do not share": (_replace(10, b"\x00\x02\x01\x04"), False),
    "empty psk_key_exchange_modes": (_replace(45, b"\x00"), False),
    "TLS 1.2 only": (_replace(43, b"\x02\x03\x03"), False),
    "TLS 1.1 only": (_replace(43, b"\x02\x03\x02"), False),
    "no supported_versions": (_drop(43), False),
    "empty supported_versions": (_replace(43, b"\x00"), False),
    "an unknown version above": (_replace(43, b"\x04\x7f\x1c\x03\x04"), True),
    "legacy version TLS 1.1": (_set("version", b"\x03\x02"), False),
    "no null compression": (_set("compression", b"\x01\x01"), False),
    "no compression methods": (_set("compression", b"\x00"), False),
    "no cipher suites": (_set("suites", b"\x00\x00"), False),
    "a cookie": (_add(44, b"\x00\x02ab"), None),
    "two of one extension": (lambda hello: hello.extensions.append(hello.extensions[0]), False),
}

#: Edits of a resuming ClientHello (they break the binder: the same alert either way).
RESUMED_EDITS: dict[str, tuple[Edit, bool | None]] = {
    "as sent": (lambda hello: None, True),
    "pre_shared_key not last": (_first(41), False),
    # (aiotls drops a PSK offered for psk_ke alone before any check: a full handshake)
    "psk_ke only": (_replace(45, b"\x01\x00"), True),
    "no psk_key_exchange_modes": (_drop(45), False),
    "psk_dhe_ke and psk_ke": (_replace(45, b"\x02\x00\x01"), None),
    "no signature_algorithms": (_drop(13), None),
}


def _contexts(pki: PKI) -> tuple[aiotls.TLSContext, aiotls.TLSContext]:
    client_ctx, server_ctx = pki.client_context(), pki.server_context()
    client_ctx.set_alpn_protocols(["h2", "http/1.1"])
    server_ctx.set_alpn_protocols(["http/1.1"])
    return client_ctx, server_ctx


def _edited(*edits: Edit) -> Callable[[bytes], bytes]:
    def edit_hello(record: bytes) -> bytes:
        hello = HelloParts.of(record)
        for edit in edits:
            edit(hello)
        return hello.record()
    return edit_hello


@pytest.mark.parametrize("name", list(EDITS))
def test_client_hello_answered_as_tlslite(pki: PKI, seeded: Seeded,
                                          monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    edit, accepted = EDITS[name]
    client_ctx, server_ctx = _contexts(pki)
    same_both_ways("accept", seeded, monkeypatch, client_ctx, server_ctx,
                   edit_hello=_edited(edit), expect_lean=accepted)


@pytest.mark.parametrize("name", list(RESUMED_EDITS))
def test_resuming_client_hello_answered_as_tlslite(pki: PKI, seeded: Seeded,
                                                   monkeypatch: pytest.MonkeyPatch,
                                                   name: str) -> None:
    edit, accepted = RESUMED_EDITS[name]
    client_ctx, server_ctx = _contexts(pki)
    session = seeded_ticket(client_ctx, server_ctx)
    run = same_both_ways("accept", seeded, monkeypatch, client_ctx, server_ctx,
                         session=session, edit_hello=_edited(edit), expect_lean=accepted)
    if name == "as sent":
        assert run[2].session_reused


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(st.lists(st.sampled_from(sorted(EDITS)), min_size=2, max_size=4))
def test_client_hello_edited_several_ways_answered_as_tlslite(
        pki: PKI, seeded: Seeded, monkeypatch: pytest.MonkeyPatch, names: list[str]) -> None:
    client_ctx, server_ctx = _contexts(pki)
    same_both_ways("accept", seeded, monkeypatch, client_ctx, server_ctx,
                   edit_hello=_edited(*(EDITS[name][0] for name in names)), expect_lean=None)


@pytest.mark.parametrize("case", ["groups", "suites", "hello retry", "tls12 server",
                                  "client certificate"])
def test_server_settings_answered_as_tlslite(pki: PKI, seeded: Seeded,
                                             monkeypatch: pytest.MonkeyPatch, case: str) -> None:
    client_ctx, server_ctx = _contexts(pki)
    accepted: bool | None = True
    if case == "groups":
        client_ctx.set_groups(["secp384r1", "x25519"])
        server_ctx.set_groups(["secp384r1", "secp256r1", "x25519"])
    elif case == "suites":
        client_ctx.set_ciphers("TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_GCM_SHA256")
        server_ctx.set_ciphers("TLS_AES_128_GCM_SHA256")
    elif case == "hello retry":  # (the client's key share is not one the server takes)
        client_ctx.set_groups(["secp256r1", "x25519"])
        server_ctx.set_groups(["x25519"])
        accepted = False
    elif case == "tls12 server":
        server_ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        accepted = False
    else:
        server_ctx.verify_mode = ssl.CERT_REQUIRED
        server_ctx.load_verify_locations(pki.ca_file)
        client_ctx.load_cert_chain(pki.client[1], pki.client[2])
    same_both_ways("accept", seeded, monkeypatch, client_ctx, server_ctx,
                   expect_lean=accepted)


def test_openssl_client_hello_is_accepted_as_tlslite(pki: PKI, seeded: Seeded,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """OpenSSL's ClientHello (the stdlib's ssl), in place of aiotls's: accepted here, and
    answered with the same bytes as tlslite's method answers it."""
    ctx = ssl.create_default_context(cafile=pki.ca_file)
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(incoming, outgoing, server_hostname="localhost")
    with pytest.raises(ssl.SSLWantReadError):
        obj.do_handshake()
    openssl_hello = outgoing.read()
    client_ctx, server_ctx = _contexts(pki)
    run = same_both_ways("accept", seeded, monkeypatch, client_ctx, server_ctx,
                         edit_hello=lambda _: openssl_hello, expect_lean=True)
    assert run[3] is not None  # (aiotls's client did not send that hello: it gives up)


def test_common_handshakes_are_accepted_here(pki: PKI) -> None:
    client_ctx, server_ctx = _contexts(pki)
    assert lean_path_taken("accept", client_ctx, server_ctx)
    session = seeded_ticket(client_ctx, server_ctx)
    assert lean_path_taken("accept", client_ctx, server_ctx, session)
