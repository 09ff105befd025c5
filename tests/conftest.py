"""Shared fixtures: a test PKI generated once per session, and context factories."""

from __future__ import annotations

import os
import ssl
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

import aiotls
from aiotls.events import DataReceived
from tests.certs import CA, Issued, KeyType

SERVER_NAMES = ("localhost", "example.test", "127.0.0.1", "::1")


@dataclass(frozen=True)
class PKI:
    """A root CA, server certificates of every key type, and a client certificate."""

    ca: CA
    directory: str
    ca_file: str
    servers: dict[str, tuple[Issued, str, str]]  # key type -> (issued, certfile, keyfile)
    client: tuple[Issued, str, str]

    def server(self, key_type: KeyType = "ecdsa-p256") -> tuple[str, str]:
        _, certfile, keyfile = self.servers[key_type]
        return certfile, keyfile

    def server_context(self, key_type: KeyType = "ecdsa-p256") -> aiotls.TLSContext:
        ctx = aiotls.TLSContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(*self.server(key_type))
        return ctx

    def client_context(self) -> aiotls.TLSContext:
        ctx = aiotls.TLSContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.load_verify_locations(cafile=self.ca_file)
        return ctx

    def stdlib_server_context(self, key_type: KeyType = "ecdsa-p256") -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(*self.server(key_type))
        return ctx

    def stdlib_client_context(self) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.load_verify_locations(cafile=self.ca_file)
        return ctx


@pytest.fixture(scope="session")
def pki() -> Iterator[PKI]:
    ca = CA()
    with tempfile.TemporaryDirectory(prefix="aiotls-pki-") as directory:
        ca_file = os.path.join(directory, "ca.pem")
        with open(ca_file, "wb") as f:
            f.write(ca.cert_pem)
        servers: dict[str, tuple[Issued, str, str]] = {}
        for key_type in ("ecdsa-p256", "rsa2048", "ed25519", "ecdsa-p384"):
            issued = ca.issue(*SERVER_NAMES, key_type=key_type)  # type: ignore[arg-type]
            servers[key_type] = (issued, *issued.write(directory, name=f"server-{key_type}"))
        client = ca.issue("client.example.test", client=True, server=False)
        yield PKI(ca, directory, ca_file, servers, (client, *client.write(directory, name="client")))


def data_of(conn: aiotls.TLSConnection) -> bytes:
    """The application data among the connection's pending events (which it takes)."""
    return b"".join(e.data for e in conn.events() if isinstance(e, DataReceived))


def pump(a: aiotls.TLSConnection, b: aiotls.TLSConnection, rounds: int = 50) -> None:
    """Shuttle bytes between two in-memory connections until both are quiet."""
    for _ in range(rounds):
        out_a = a.data_to_send()
        if out_a:
            b.receive_data(out_a)
        out_b = b.data_to_send()
        if out_b:
            a.receive_data(out_b)
        if not out_a and not out_b:
            return
    raise AssertionError("connections did not go quiet")


def handshake(
    client_ctx: aiotls.TLSContext,
    server_ctx: aiotls.TLSContext,
    server_hostname: str | None = "localhost",
) -> tuple[aiotls.TLSConnection, aiotls.TLSConnection]:
    """Connect two in-memory endpoints; returns (client, server) after pumping."""
    client = aiotls.TLSConnection(client_ctx, server_hostname=server_hostname)
    server = aiotls.TLSConnection(server_ctx, server_side=True)
    pump(client, server)
    return client, server


# --- hostile handshake messages from an otherwise honest peer -----------------------------------


class _RawRecord:
    """A record's content as tlslite's record layer reads it from a Message."""

    def __init__(self, content_type: int, data: bytes) -> None:
        self.contentType = content_type
        self._data = bytearray(data)

    def write(self) -> bytearray:
        return bytearray(self._data)


def split_handshake_messages(data: bytes) -> list[bytes] | None:
    """Whole handshake messages (4-byte header included), or None if ``data`` is not that."""
    out, pos = [], 0
    while pos < len(data):
        if len(data) - pos < 4:
            return None
        end = pos + 4 + int.from_bytes(data[pos + 1:pos + 4], "big")
        if end > len(data):
            return None
        out.append(data[pos:end])
        pos = end
    return out


def tap_handshake(conn: aiotls.TLSConnection, edit: Any) -> list[int]:
    """Rewrite the handshake messages ``conn`` sends from now on.

    ``edit(message)`` gets each outgoing handshake message (header included) after ``conn``
    hashed it into its transcript and before record protection, and returns what to send
    instead.  So the peer receives well-framed, correctly encrypted records -- TLS 1.3's
    encrypted flights included -- whose plaintext is hostile.  Returns the list of the
    types of the messages seen so far (it grows as ``conn`` sends).

    This reaches into the connection's engine (its tlslite record layer): the one way to
    put chosen plaintext under real traffic keys.
    """
    layer = conn._engine._tl._recordLayer
    send = layer.sendRecord
    seen: list[int] = []

    def send_record(msg: Any) -> Any:
        if msg.contentType == 22:
            messages = split_handshake_messages(bytes(msg.write()))
            if messages is not None:
                out = []
                for m in messages:
                    seen.append(m[0])
                    out.append(edit(m))
                msg = _RawRecord(22, b"".join(out))
        return send(msg)

    layer.sendRecord = send_record
    return seen


# --- event loops: every async test runs on the default loop and on uvloop -----------------------

def pytest_asyncio_loop_factories(config: pytest.Config, item: pytest.Item) -> dict[str, Any]:
    """pytest-asyncio hook: parametrize async tests over the default loop and uvloop."""
    import asyncio

    import uvloop

    return {"asyncio": asyncio.new_event_loop, "uvloop": uvloop.new_event_loop}
