"""TLSConnection's lending API: ``lend_plaintext``, ``LentDataReceived``,
``plaintext_lent`` and ``release_plaintext()`` keep the contract their docstrings state.

Lent views stay intact until release however many batches arrive, releasing is
idempotent, the buffers really go back (a view used after release sees them reused), and
``DataReceived.data`` is always ``bytes``.
"""

from __future__ import annotations

import ssl

import pytest

import aiotls
from aiotls import DataReceived, LentDataReceived, TLSConnection
from tests.helpers import PKI, VERSION_NAMES, VERSION_PARAMS, handshake

BATCH = 40_000  # several records: decrypted into a lent buffer, not the one-record path


def _pair(pki: PKI, version: ssl.TLSVersion, *, lend: bool = True
          ) -> tuple[TLSConnection, TLSConnection]:
    cctx = pki.client_context()
    cctx.maximum_version = version
    client, server = handshake(cctx, pki.server_context(), client_kw={"lend_plaintext": lend})
    client.events(), server.events()
    assert client.version() == VERSION_NAMES[version]
    return client, server


def _batch(n: int) -> bytes:
    return bytes([n]) * BATCH


def _receive(client: TLSConnection, server: TLSConnection, data: bytes
             ) -> list[DataReceived | LentDataReceived]:
    server.send_data(data)
    client.receive_data(server.data_to_send())
    events = [e for e in client.events() if isinstance(e, DataReceived | LentDataReceived)]
    for event in events:  # what each event's type says it carries
        assert type(event.data) is (bytes if isinstance(event, DataReceived) else memoryview)
    return events


@pytest.mark.parametrize("version", VERSION_PARAMS)
def test_lent_views_stay_intact_until_release(pki: PKI, version: ssl.TLSVersion) -> None:
    client, server = _pair(pki, version)
    assert client.lend_plaintext and not client.plaintext_lent
    batches = [_receive(client, server, _batch(n)) for n in range(1, 6)]
    assert all(isinstance(e, LentDataReceived) for events in batches for e in events)
    assert client.plaintext_lent
    # nothing overwrote an earlier batch while later ones were decrypted
    for n, events in enumerate(batches, 1):
        assert b"".join(e.data for e in events) == _batch(n)
    client.release_plaintext()
    assert not client.plaintext_lent


@pytest.mark.parametrize("version", VERSION_PARAMS)
def test_releasing_twice_or_with_nothing_lent_is_harmless(pki: PKI,
                                                          version: ssl.TLSVersion) -> None:
    client, server = _pair(pki, version)
    client.release_plaintext()  # nothing lent yet
    for n in range(1, 4):
        events = _receive(client, server, _batch(n))
        assert b"".join(e.data for e in events) == _batch(n)
        client.release_plaintext()
        client.release_plaintext()
        assert not client.plaintext_lent
    assert client.error is None and client.state is aiotls.ConnectionState.OPEN


def test_a_view_used_after_release_sees_its_buffer_reused(pki: PKI) -> None:
    """Why the contract says "valid until release": the buffer goes back to the pool and
    the next batch decrypts into it.  (Fails if release_plaintext() stops giving buffers
    back, which would cost a fresh buffer per batch.)"""
    client, server = _pair(pki, ssl.TLSVersion.TLSv1_3)
    (first,) = _receive(client, server, _batch(1))
    assert isinstance(first, LentDataReceived) and first.data == _batch(1)
    client.release_plaintext()
    (second,) = _receive(client, server, _batch(2))
    assert second.data == _batch(2)
    assert first.data == _batch(2)  # the same memory, now holding the next batch
    client.release_plaintext()


def test_lending_off_gives_bytes_and_can_be_switched_per_batch(pki: PKI) -> None:
    client, server = _pair(pki, ssl.TLSVersion.TLSv1_3, lend=False)
    (given,) = _receive(client, server, _batch(1))
    assert isinstance(given, DataReceived) and given.data == _batch(1)
    assert not client.plaintext_lent
    client.lend_plaintext = True
    (lent,) = _receive(client, server, _batch(2))
    assert isinstance(lent, LentDataReceived) and lent.data == _batch(2)
    client.lend_plaintext = False  # a buffer lent before the switch is still to release
    (given,) = _receive(client, server, _batch(3))
    assert isinstance(given, DataReceived) and lent.data == _batch(2)
    assert client.plaintext_lent
    client.release_plaintext()
    assert not client.plaintext_lent
