"""Helpers shared by the tests: the test PKI, in-memory connection pairs, record and
handshake tools, the TLS versions every version-parametrized test runs over.

The one module tests import helpers from (fixtures are in conftest.py, which uses these).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import email.utils
import hashlib
import os
import random
import signal
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, mlkem, x25519

import aiotls
import aiotls.asyncio
from aiotls import _crypto, _crypto_pq
from aiotls._engine import accept, client13, client_hello, plainread, server13, tickets
from aiotls.events import DataReceived
from tests.certs import CA, Issued, KeyType

#: The TLS versions aiotls speaks, by name: tests parametrized over versions run over these
#: (the ``version`` fixture gives each name in turn).
VERSIONS: dict[str, ssl.TLSVersion] = {"TLSv1.2": ssl.TLSVersion.TLSv1_2,
                                       "TLSv1.3": ssl.TLSVersion.TLSv1_3}
#: The same versions as ``ssl.TLSVersion`` values, for ``parametrize`` (ids: their names).
VERSION_PARAMS = [pytest.param(value, id=name) for name, value in VERSIONS.items()]
#: ``ssl.TLSVersion`` -> its name (as ``version()`` spells it).
VERSION_NAMES: dict[ssl.TLSVersion, str] = {value: name for name, value in VERSIONS.items()}

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

    def mtls_contexts(self) -> tuple[aiotls.TLSContext, aiotls.TLSContext]:
        """A client context with the client certificate, and a server context that
        requires one from this CA."""
        client = self.client_context()
        client.load_cert_chain(self.client[1], self.client[2])
        server = self.server_context()
        server.verify_mode = ssl.CERT_REQUIRED
        server.load_verify_locations(cafile=self.ca_file)
        return client, server

    def stdlib_server_context(self, key_type: KeyType = "ecdsa-p256") -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(*self.server(key_type))
        return ctx

    def stdlib_client_context(self) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.load_verify_locations(cafile=self.ca_file)
        return ctx


def _build_pki(ca: CA) -> Iterator[PKI]:
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
    *,
    client_kw: dict[str, Any] | None = None,
    **server_kw: Any,
) -> tuple[aiotls.TLSConnection, aiotls.TLSConnection]:
    """The tests' one pair-maker: two in-memory endpoints, pumped until quiet; returns
    (client, server).  ``client_kw`` and ``server_kw``: more TLSConnection arguments."""
    client = aiotls.TLSConnection(client_ctx, server_hostname=server_hostname,
                                  **(client_kw or {}))
    server = aiotls.TLSConnection(server_ctx, server_side=True, **server_kw)
    pump(client, server)
    return client, server


def connect(client_ctx: aiotls.TLSContext, server_ctx: aiotls.TLSContext,
            session: aiotls.TLSSession | None = None,
            ) -> tuple[aiotls.TLSConnection, aiotls.TLSConnection]:
    """A handshake in memory (resuming ``session`` if given), then a little data from the
    server so TLS 1.3 tickets (sent after the handshake) arrive; returns (client, server)."""
    client, server = handshake(client_ctx, server_ctx, client_kw={"session": session})
    if client.handshake_complete and server.handshake_complete:
        server.send_data(b"hello")
        pump(client, server)
    return client, server


# --- session chains over aiotls.asyncio --------------------------------------------------------


async def echo_line(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """An asyncio server's connection handler: echo one line, then close."""
    writer.write(await reader.readline())
    await writer.drain()
    writer.close()
    await writer.wait_closed()


async def session_chain(port: int, ctx: aiotls.TLSContext, count: int = 3,
                        after_each: Callable[[], None] | None = None) -> list[bool]:
    """README's recipe over aiotls.asyncio: ``count`` connections to an :func:`echo_line`
    server on 127.0.0.1:``port``, each offering the session of the one before; each sends
    and checks a line.  Returns each connection's ``session_reused``; ``after_each`` runs
    after every connection (e.g. to change the server).  Bounded: 30 s in all."""
    session = None
    reused = []
    async with asyncio.timeout(30):
        for _ in range(count):
            reader, writer = await aiotls.asyncio.open_connection(
                "127.0.0.1", port, ssl=ctx, server_hostname="localhost", session=session)
            writer.write(b"ping\n")
            assert await reader.readline() == b"ping\n"
            reused.append(writer.get_extra_info("session_reused"))
            session = writer.get_extra_info("ssl_object").session
            writer.close()
            await writer.wait_closed()
            if after_each is not None:
                after_each()
    return reused


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


def engine_record_layer(conn: aiotls.TLSConnection) -> Any:
    """The tlslite record layer under ``conn``'s engine (private state).

    The one place the tests name the engine's tlslite record layer: for
    :func:`tap_handshake` (which wraps its ``sendRecord``), :class:`RecordForger` (which
    reads the keys of a legacy suite that tlslite protects), test_hostile's empty-record
    flood and test_versions_and_bounds's fault injection.  Nothing else may reach there.
    """
    return conn._engine._tl._recordLayer


def tap_handshake(conn: aiotls.TLSConnection, edit: Any) -> list[int]:
    """Internal verb (for tests only): rewrite the handshake messages ``conn`` sends from
    now on.

    ``edit(message)`` gets each outgoing handshake message (header included) after ``conn``
    hashed it into its transcript and before record protection, and returns what to send
    instead.  So the peer receives well-framed, correctly encrypted records -- TLS 1.3's
    encrypted flights included -- whose plaintext is hostile.  Returns the list of the
    types of the messages seen so far (it grows as ``conn`` sends).

    Not public behaviour: it wraps ``sendRecord`` of the engine's tlslite record layer
    (:func:`engine_record_layer`), the one way to put chosen plaintext under real traffic
    keys.  Tests that need hostile handshake plaintext use this verb; none patches the
    record layer itself.
    """
    layer = engine_record_layer(conn)
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


# --- forging protected records --------------------------------------------------------------------


class RecordForger:
    """Seals arbitrary records the way the peer of ``conn`` would, so tests can send shapes
    an honest aiotls never produces (oversized, padded, interleaved, fragmented).

    It takes the keys and the next sequence number ``conn`` *reads* with (``sending=True``:
    writes with, to speak in ``conn``'s name) -- aiotls's record layer after the handshake,
    the engine's (tlslite's) state during it -- and seals with ``cryptography`` directly,
    independently of aiotls's code.  From then on it keeps its own sequence number: the
    records it makes replace the real ones in that direction.
    """

    def __init__(self, conn: aiotls.TLSConnection, *, sending: bool = False) -> None:
        from cryptography.hazmat.primitives.ciphers.aead import AESCCM, AESGCM, ChaCha20Poly1305

        engine = conn._engine
        keys = engine.record_keys(reading=not sending)
        if keys is not None:
            cipher, key, iv, seq = keys.cipher, keys.key, keys.iv, keys.seq
            self.tls13 = keys.tls13
        else:
            layer = engine_record_layer(conn)
            read = layer._writeState if sending else layer._readState
            assert read.encContext is not None, "no keys yet: nothing to forge with"
            cipher, key = read.encContext.name, bytes(read.encContext.key)
            iv, seq = bytes(read.fixedNonce), int(read.seqnum)
            self.tls13 = tuple(engine._tl.version) > (3, 3)
        self.chacha = cipher == "chacha20-poly1305"
        self.aead = ChaCha20Poly1305(key) if self.chacha else \
            AESCCM(key) if cipher.endswith("ccm") else AESGCM(key)
        self.iv = iv
        self.seq = seq

    def _nonce(self) -> bytes:
        return (int.from_bytes(self.iv, "big") ^ self.seq).to_bytes(12, "big")

    def seal(self, content_type: int, content: bytes, padding: int = 0) -> bytes:
        """One protected record carrying ``content`` of ``content_type`` (TLS 1.3: plus
        ``padding`` zero bytes after the inner content type)."""
        if self.tls13:
            inner = content + bytes((content_type,)) + bytes(padding)
            length = len(inner) + 16
            header = bytes((23, 3, 3, length >> 8, length & 0xFF))
            body = self.aead.encrypt(self._nonce(), inner, header)
        else:
            assert not padding, "TLS 1.2 AEAD records have no padding"
            n = len(content)
            aad = self.seq.to_bytes(8, "big") + bytes((content_type, 3, 3, n >> 8, n & 0xFF))
            if self.chacha:
                body = self.aead.encrypt(self._nonce(), content, aad)
            else:
                explicit = self.seq.to_bytes(8, "big")
                body = explicit + self.aead.encrypt(self.iv + explicit, content, aad)
            header = bytes((content_type, 3, 3, len(body) >> 8, len(body) & 0xFF))
        self.seq += 1
        return header + body

    def unseal(self, record: bytes) -> tuple[int, bytes]:
        """``(content type, content)`` of one protected record in this direction (TLS 1.3:
        the inner content type, padding removed)."""
        header, body = record[:5], record[5:]
        if self.tls13:
            inner = self.aead.decrypt(self._nonce(), body, header).rstrip(b"\0")
            self.seq += 1
            return inner[-1], inner[:-1]
        if self.chacha:
            nonce = self._nonce()
        else:
            nonce, body = self.iv + body[:8], body[8:]
        n = len(body) - 16
        aad = self.seq.to_bytes(8, "big") + bytes((header[0], 3, 3, n >> 8, n & 0xFF))
        self.seq += 1
        return header[0], self.aead.decrypt(nonce, body, aad)


def split_records(data: bytes) -> list[bytes]:
    """Whole TLS records (header included) of a byte stream."""
    out, pos = [], 0
    while pos < len(data):
        n = int.from_bytes(data[pos + 3:pos + 5], "big")
        out.append(data[pos:pos + 5 + n])
        pos += 5 + n
    assert pos == len(data), "the stream ends inside a record"
    return out


# --- frameworks on aiotls contexts (test_frameworks*.py) ------------------------------------------

#: What the aiotls ends of a framework test allow, and the OpenSSL ends do not: P-384 as
#: the only key-exchange group and ChaCha20-Poly1305 as the only suite (TLS 1.3 included,
#: which ``ssl.SSLContext.set_ciphers`` cannot restrict).  An OpenSSL pair negotiates
#: x25519 and AES-256-GCM, so the group and suite seen by either end show who did the TLS.
FRAMEWORK_GROUP = "secp384r1"
FRAMEWORK_SUITE = "TLS_CHACHA20_POLY1305_SHA256"
FRAMEWORK_SUITE_TLS12 = "ECDHE-ECDSA-CHACHA20-POLY1305"


@dataclass
class FrameworkEnds:
    """The two contexts of a framework test: aiotls's or the stdlib's on each end."""

    mode: str  # "aiotls-client" (stdlib server), "aiotls-server" (stdlib client), "aiotls-both"
    client: ssl.SSLContext
    server: ssl.SSLContext

    @property
    def aiotls_client(self) -> bool:
        return self.mode != "aiotls-server"

    @property
    def aiotls_server(self) -> bool:
        return self.mode != "aiotls-client"

    def check(self, obj: Any, *, server_side: bool) -> None:
        """``obj`` (a transport's ``ssl_object``) is aiotls's on the ends given aiotls, an
        OpenSSL one otherwise; the suite is the one only aiotls's ends allow; with aiotls
        on both ends the group is the one only they allow."""
        from aiotls.compat import TLSObject

        if self.aiotls_server if server_side else self.aiotls_client:
            assert isinstance(obj, TLSObject), f"not aiotls's: {obj!r}"
            assert isinstance(obj.connection, aiotls.TLSConnection)
            assert obj.connection.handshake_complete
            if self.mode == "aiotls-both":
                assert obj.connection.group == FRAMEWORK_GROUP
        else:
            assert type(obj) is ssl.SSLObject
        self.check_cipher(obj.cipher())

    def check_cipher(self, cipher: tuple[str, str, int] | None) -> None:
        """The negotiated suite (``cipher()`` of either end) is the one only aiotls allowed."""
        assert cipher is not None
        expected = FRAMEWORK_SUITE if cipher[1] == "TLSv1.3" else FRAMEWORK_SUITE_TLS12
        assert cipher[0] == expected, cipher


def framework_ends(pki: PKI, mode: str) -> FrameworkEnds:
    client: ssl.SSLContext
    server: ssl.SSLContext
    if mode == "aiotls-server":
        client = pki.stdlib_client_context()
    else:
        client = pki.client_context()
        client.set_groups([FRAMEWORK_GROUP])
        client.set_ciphers(FRAMEWORK_SUITE + ":" + FRAMEWORK_SUITE_TLS12)
    if mode == "aiotls-client":
        server = pki.stdlib_server_context()
    else:
        server = pki.server_context()
        server.set_ciphers(FRAMEWORK_SUITE + ":" + FRAMEWORK_SUITE_TLS12)
    return FrameworkEnds(mode, client, server)


# --- differential runs: aiotls's lean TLS 1.3 paths against tlslite-ng's methods --------------

#: side -> (module whose ENABLED switches the lean path, flag set on tlslite's connection);
#: "hello" is the client's ClientHello (client_hello.py), "plain" the reading of either
#: side's first message (plainread.py), "tickets" the server's TLS 1.3 tickets (tickets.py),
#: "accept" the server's checks of a ClientHello (accept.py)
_LEAN_PATHS = {"server": (server13, "_aiotls_lean"), "client": (client13, "_aiotls_lean_client"),
               "hello": (client_hello, "_aiotls_lean_hello"),
               "plain": (plainread, "_aiotls_plain_reads"),
               "tickets": (tickets, "_aiotls_lean_tickets"),
               "accept": (accept, "_aiotls_accepted")}
#: The paths whose flag is on the server's connection (the others: the client's).
_SERVER_PATHS = frozenset({"server", "tickets", "accept"})
_LEAN_FLAGS = frozenset(flag for _, flag in _LEAN_PATHS.values())

#: One clock reading for both runs of a handshake (tickets carry their creation time).
SEEDED_NOW = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
_SEEDED_CURVES = {"secp256r1": ec.SECP256R1(), "secp384r1": ec.SECP384R1(),
           "secp521r1": ec.SECP521R1()}


class Seeded:
    """Deterministic stand-ins for every source of randomness a handshake uses."""

    def __init__(self) -> None:
        self.counter = 0
        self.signatures: dict[tuple[Any, ...], bytes] = {}

    def reset(self) -> None:
        self.counter = 0

    def bytes(self, n: int) -> bytes:
        out = b""
        while len(out) < n:
            self.counter += 1
            out += hashlib.sha256(self.counter.to_bytes(8, "big")).digest()
        return out[:n]

    def key(self, group: Any) -> Any:
        seed = self.bytes(32)
        if group.name == "x25519":
            return x25519.X25519PrivateKey.from_private_bytes(seed)
        curve = _SEEDED_CURVES[group.name]
        return ec.derive_private_key(int.from_bytes(seed, "big") % (2**250) + 1, curve)


def seed_handshakes(monkeypatch: pytest.MonkeyPatch) -> Seeded:
    """Make every handshake's randomness :class:`Seeded` (the ``seeded`` fixture)."""
    seeded = Seeded()
    monkeypatch.setattr("os.urandom", seeded.bytes)
    monkeypatch.setattr(random, "_urandom", seeded.bytes)
    monkeypatch.setattr(time, "time", SEEDED_NOW.timestamp)  # (tlslite's clock: ticket ages)
    monkeypatch.setattr(_crypto.ECDHGroup, "generate", lambda group: seeded.key(group))
    # X25519MLKEM768: seeded keys; the server's answer (ML-KEM encapsulation draws its own
    # randomness inside OpenSSL) remembered per client share, as signatures are below
    hybrid = _crypto_pq.X25519MLKEM768
    monkeypatch.setattr(hybrid, "generate", staticmethod(lambda: (
        mlkem.MLKEM768PrivateKey.from_seed_bytes(seeded.bytes(64)),
        x25519.X25519PrivateKey.from_private_bytes(seeded.bytes(32)))))
    answer = hybrid.server_answer
    answers: dict[bytes, tuple[bytes, bytes]] = {}

    def remembered_answer(share: bytes | bytearray) -> tuple[bytearray, bytearray]:
        if bytes(share) not in answers:
            secret, reply = answer(share)
            answers[bytes(share)] = (bytes(secret), bytes(reply))
        return tuple(bytearray(x) for x in answers[bytes(share)])  # type: ignore[return-value]

    monkeypatch.setattr(hybrid, "server_answer", staticmethod(remembered_answer))
    for name in ("ecdsa_sign_digest", "rsa_sign_digest"):
        sign = getattr(_crypto, name)

        def remembered(*args: Any, _sign: Callable[..., bytes] = sign, _name: str = name) -> bytes:
            key = (_name, id(args[0]), *(bytes(a) if isinstance(a, bytes | bytearray) else a
                                         for a in args[1:]))
            if key not in seeded.signatures:
                seeded.signatures[key] = _sign(*args)
            return seeded.signatures[key]

        monkeypatch.setattr(_crypto, name, remembered)
    return seeded


def engine_state(conn: aiotls.TLSConnection) -> dict[str, Any]:
    """What a connection keeps of the handshake: tlslite's connection and session attributes
    (values of plain types), and the connection's introspection."""
    tl = conn._engine._tl
    plain = (bytes, bytearray, int, str, tuple, bool, type(None))
    state = {f"tl.{k}": v for k, v in vars(tl).items()
             if isinstance(v, plain) and k not in _LEAN_FLAGS}
    if tl.session is not None:
        state |= {f"session.{k}": v for k, v in vars(tl.session).items() if isinstance(v, plain)}
        state["session.appProto"] = tl.session.appProto
        state["session.serverCertChain"] = tl.session.serverCertChain is not None
    state |= {"version": conn.version(), "cipher": conn.cipher(), "group": conn.group,
              "alpn": conn.selected_alpn_protocol(), "resumed": conn.session_reused,
              "sni": conn._engine.sni(), "channel": conn.get_channel_binding()}
    return state


#: One run: every chunk sent (who, bytes), the client, the server, the error if any.
DifferentialRun = tuple[list[tuple[str, bytes | bytearray]], aiotls.TLSConnection, aiotls.TLSConnection,
             Exception | None]


def differential_run(side: str, lean: bool, seeded: Seeded, monkeypatch: pytest.MonkeyPatch,
                     client_ctx: aiotls.TLSContext, server_ctx: aiotls.TLSContext, *,
                     hostname: str | None = "localhost",
                     session: aiotls.TLSSession | None = None,
                     edit_client: Callable[[bytes], bytes] | None = None,
                     edit_server: Callable[[bytes], bytes] | None = None,
                     edit_hello: Callable[[bytes], bytes] | None = None,
                     expect_lean: bool | None = True,
                     server_chunk: int | None = None,
                     client_chunk: int | None = None,
                     edit_finished: Callable[[bytes, aiotls.TLSConnection], bytes]
                     | None = None,
                     edit_server_flight: Callable[[bytes], bytes] | None = None,
                     ) -> DifferentialRun:
    """One handshake and a message each way, with ``side``'s lean TLS 1.3 path
    (``"server"``: ``_engine/server13.py``, ``"client"``: ``_engine/client13.py``,
    ``"hello"``: the client's ClientHello, ``_engine/client_hello.py``, ``"plain"``: the
    hellos read by ``_engine/plainread.py``, ``"tickets"``: the server's TLS 1.3 tickets,
    ``_engine/tickets.py``) on or
    off; every chunk sent, in order.  ``expect_lean``: whether the lean run takes its path
    (default: yes; None: either way).  ``server_chunk``/``client_chunk``: the client/server receives what the
    other sends in pieces of this many bytes.  ``edit_finished`` rewrites the client's
    second flight (the records of its Finished) on the wire, given the server (whose read
    keys a :class:`RecordForger` can take); ``edit_server_flight`` the server's first
    flight (ServerHello to Finished) on the wire."""
    monkeypatch.setattr(_LEAN_PATHS[side][0], "ENABLED", lean)
    aiotls.TLSConnection(server_ctx, server_side=True)  # (makes the context's ticket keys)
    # (a first ClientHello for this context and name, which later ones are made from)
    aiotls.TLSConnection(client_ctx, server_hostname=hostname)
    seeded.reset()
    client = aiotls.TLSConnection(client_ctx, server_hostname=hostname, session=session,
                                  now=lambda: SEEDED_NOW)
    server = aiotls.TLSConnection(server_ctx, server_side=True, now=lambda: SEEDED_NOW)
    if edit_client is not None:
        tap_handshake(client, edit_client)
    if edit_server is not None:
        tap_handshake(server, edit_server)
    sent: list[tuple[str, bytes | bytearray]] = []
    error: Exception | None = None
    try:
        for i in range(20):
            out = client.data_to_send()
            if i == 0 and edit_hello is not None:
                out = edit_hello(bytes(out))
            if i == 1 and edit_finished is not None:
                out = edit_finished(bytes(out), server)
            if out:
                sent.append(("client", out))
                step = client_chunk or len(out)
                for at in range(0, len(out), step):
                    server.receive_data(out[at:at + step])
            back = server.data_to_send()
            if i == 0 and back and edit_server_flight is not None:
                back = edit_server_flight(bytes(back))
            if back:
                sent.append(("server", back))
                step = server_chunk or len(back)
                for at in range(0, len(back), step):
                    client.receive_data(back[at:at + step])
            if not out and not back:
                break
        if client.handshake_complete and server.handshake_complete:
            server.send_data(b"from the server")
            client.send_data(b"from the client")
            pump(client, server)
    except aiotls.TLSError as exc:
        error = exc
        for conn, who in ((server, "server"), (client, "client")):
            rest = conn.data_to_send()
            if rest:
                sent.append((who, rest))
    conn = server if side in _SERVER_PATHS else client
    flag = _LEAN_PATHS[side][1]
    if expect_lean is not None:
        assert bool(getattr(conn._engine._tl, flag)) is (lean and expect_lean)
    return sent, client, server, error or server.error or client.error


def same_both_ways(side: str, seeded: Seeded, monkeypatch: pytest.MonkeyPatch,
                   client_ctx: aiotls.TLSContext, server_ctx: aiotls.TLSContext,
                   **kw: Any) -> DifferentialRun:
    """One handshake (:func:`differential_run`'s arguments) through ``side``'s lean path
    and through tlslite's method: the same bytes, states and error; returns the lean run."""
    ours = differential_run(side, True, seeded, monkeypatch, client_ctx, server_ctx, **kw)
    theirs = differential_run(side, False, seeded, monkeypatch, client_ctx, server_ctx, **kw)
    assert [who for who, _ in ours[0]] == [who for who, _ in theirs[0]]
    for (who, mine), (_, expected) in zip(ours[0], theirs[0], strict=True):
        assert mine == expected, who
    assert engine_state(ours[2]) == engine_state(theirs[2])
    assert engine_state(ours[1]) == engine_state(theirs[1])
    assert (type(ours[3]), getattr(ours[3], "code", None)) == \
        (type(theirs[3]), getattr(theirs[3], "code", None))
    return ours


def lean_contexts(pki: PKI, key_type: str = "ecdsa-p256",
                  ) -> tuple[aiotls.TLSContext, aiotls.TLSContext]:
    """A client context and a server context of ``key_type`` (the lean-path tests)."""
    return pki.client_context(), pki.server_context(key_type)  # type: ignore[arg-type]


def seeded_ticket(client_ctx: aiotls.TLSContext,
                  server_ctx: aiotls.TLSContext) -> aiotls.TLSSession:
    """A TLS 1.3 session with a ticket, made at :data:`SEEDED_NOW`."""
    client = aiotls.TLSConnection(client_ctx, server_hostname="localhost", now=lambda: SEEDED_NOW)
    server = aiotls.TLSConnection(server_ctx, server_side=True, now=lambda: SEEDED_NOW)
    pump(client, server)
    server.send_data(b"x")
    pump(client, server)
    session = client.session
    assert session is not None and session.has_ticket
    return session


def flip_last_byte(kind: int) -> Callable[[bytes], bytes]:
    """A :func:`tap_handshake` edit: the last byte of messages of type ``kind`` flipped."""
    def edit(message: bytes) -> bytes:
        return message[:-1] + bytes((message[-1] ^ 1,)) if message[0] == kind else message
    return edit


#: TLS 1.3 suites and key-exchange group lists every lean-path test runs over.
LEAN_SUITES = ["TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256"]
LEAN_GROUP_LISTS = [["x25519"], ["secp256r1"], ["secp384r1", "x25519"],
                    ["x25519mlkem768", "x25519"]]

#: (client ALPN, server ALPN, host name) cases for the lean-path tests: overlap, none on one
#: side, an IP address (no SNI), no host name.
ALPN_SNI_CASES = [
    (["http/1.1", "h2"], ["h2", "http/1.1"], "localhost"),
    (["h2"], None, "example.test"),
    (None, ["h2"], "127.0.0.1"),
    (["x", "h2", "http/1.1"], ["http/1.1", "h2"], None),
]


def alpn_sni_contexts(pki: PKI, client_alpn: list[str] | None, server_alpn: list[str] | None,
                      hostname: str | None) -> tuple[aiotls.TLSContext, aiotls.TLSContext]:
    """The contexts of one of :data:`ALPN_SNI_CASES`."""
    client_ctx, server_ctx = lean_contexts(pki)
    if hostname is None:
        client_ctx.check_hostname = False
    if client_alpn:
        client_ctx.set_alpn_protocols(client_alpn)
    if server_alpn:
        server_ctx.set_alpn_protocols(server_alpn)
    return client_ctx, server_ctx


def lean_path_taken(side: str, client_ctx: aiotls.TLSContext, server_ctx: aiotls.TLSContext,
                    session: aiotls.TLSSession | None = None) -> bool:
    """Whether a handshake between the contexts went through ``side``'s lean TLS 1.3 path
    (a side of :data:`_LEAN_PATHS`; the ClientHello is made from a first one for the
    context, so "hello" can be taken)."""
    aiotls.TLSConnection(client_ctx, server_hostname="localhost")
    client = aiotls.TLSConnection(client_ctx, server_hostname="localhost", session=session)
    server = aiotls.TLSConnection(server_ctx, server_side=True)
    pump(client, server)
    assert client.handshake_complete and server.handshake_complete
    conn = server if side in _SERVER_PATHS else client
    return bool(getattr(conn._engine._tl, _LEAN_PATHS[side][1]))


# --- ClientHello bytes, taken apart and put together again --------------------------------


@dataclass
class HelloParts:
    """A ClientHello in one record: its fields before the extensions, and the extensions
    as (type, data) in order (for tests that rewrite what a client offers)."""

    version: bytes
    random: bytes
    session_id: bytes
    suites: bytes  # (with its two-byte length)
    compression: bytes  # (with its one-byte length)
    extensions: list[tuple[int, bytes]]

    @classmethod
    def of(cls, record: bytes) -> HelloParts:
        assert record[0] == 0x16 and record[5] == 1 and len(record) == 5 + int.from_bytes(
            record[3:5], "big"), "one record holding a ClientHello"
        body = record[9:]
        at = 34 + 1 + body[34]
        session_id = body[35:at]
        suites_end = at + 2 + int.from_bytes(body[at:at + 2], "big")
        suites = body[at:suites_end]
        compression = body[suites_end:suites_end + 1 + body[suites_end]]
        at = suites_end + len(compression)
        end = at + 2 + int.from_bytes(body[at:at + 2], "big")
        at += 2
        extensions = []
        while at < end:
            kind, size = int.from_bytes(body[at:at + 2], "big"), int.from_bytes(
                body[at + 2:at + 4], "big")
            extensions.append((kind, body[at + 4:at + 4 + size]))
            at += 4 + size
        return cls(body[:2], body[2:34], session_id, suites, compression, extensions)

    def record(self) -> bytes:
        block = b"".join(kind.to_bytes(2, "big") + len(data).to_bytes(2, "big") + data
                         for kind, data in self.extensions)
        body = (self.version + self.random + bytes((len(self.session_id),)) + self.session_id
                + self.suites + self.compression + len(block).to_bytes(2, "big") + block)
        message = b"\x01" + len(body).to_bytes(3, "big") + body
        return b"\x16\x03\x01" + len(message).to_bytes(2, "big") + message


# --- servers in a thread (real peers for the command line's tests) ---------------------------


@contextlib.contextmanager
def _thread_server(handle: Callable[[socket.socket], None], name: str,
                   parallel: bool = False) -> Iterator[int]:
    """A TCP server on 127.0.0.1 that runs ``handle`` on each accepted socket in turn (or,
    ``parallel``, each in its own thread), in a thread; every wait bounded, errors end that
    connection only.  Yields its port."""
    listener = socket.create_server(("127.0.0.1", 0), backlog=64)
    listener.settimeout(0.2)
    stop = threading.Event()

    def one(sock: socket.socket) -> None:
        sock.settimeout(5.0)
        with contextlib.suppress(OSError, ValueError), sock:
            handle(sock)

    def serve() -> None:
        while not stop.is_set():
            try:
                sock, _ = listener.accept()
            except (TimeoutError, OSError):
                continue
            if parallel:
                threading.Thread(target=one, args=(sock,), name=name, daemon=True).start()
            else:
                one(sock)

    thread = threading.Thread(target=serve, name=name, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join(10.0)
        listener.close()


def stdlib_tls_server(ctx: ssl.SSLContext | Callable[[], ssl.SSLContext], *,
                      parallel: bool = False,
                      then: str = "echo") -> contextlib.AbstractContextManager[int]:
    """A TLS echo server driven by the stdlib's ``ssl`` (OpenSSL), one connection at a
    time (``parallel``: each in its own thread); a failed handshake (a client without the
    certificate it requires...) ends that connection only.  ``ctx`` may be a function
    making a new context for each connection (new session-ticket keys each time, as
    servers that do not share them).  ``then``: after the handshake, ``echo``, or drop the
    client at once with ``close_notify`` or with a bare TCP ``close``.  A context manager
    giving its port."""
    def echo(sock: socket.socket) -> None:
        with (ctx() if callable(ctx) else ctx).wrap_socket(sock, server_side=True) as tls:
            if then == "close_notify":
                tls.unwrap()
                return
            if then == "close":
                return
            while data := tls.recv(4096):
                tls.sendall(data)
    return _thread_server(echo, "stdlib-tls-server", parallel)


def stdlib_https_server(ctx: ssl.SSLContext) -> contextlib.AbstractContextManager[int]:
    """A TLS server (the stdlib's ``ssl``) answering any HTTP request with an empty
    ``200 OK`` carrying a ``Date`` header (its clock), then closing.  Gives its port."""
    def answer(sock: socket.socket) -> None:
        with ctx.wrap_socket(sock, server_side=True) as tls:
            request = b""
            while b"\r\n\r\n" not in request and len(request) < 65536:
                chunk = tls.recv(4096)
                if not chunk:
                    return
                request += chunk
            tls.sendall(b"HTTP/1.1 200 OK\r\nDate: "
                        + email.utils.formatdate(usegmt=True).encode()
                        + b"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
    return _thread_server(answer, "stdlib-https-server")


class ConcurrencyGauge:
    """Counts connections open at once (``peak``)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.now = 0
        self.peak = 0

    def __enter__(self) -> None:
        with self._lock:
            self.now += 1
            self.peak = max(self.peak, self.now)

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self.now -= 1


def slow_tls_server(ctx: ssl.SSLContext, gauge: ConcurrencyGauge,
                    delay: float) -> contextlib.AbstractContextManager[int]:
    """A stdlib TLS server, a thread per connection, that waits ``delay`` seconds before
    each handshake (a distant server), counting in ``gauge`` the connections waiting at
    once (a client cannot finish a handshake, and so start its next one, before then)."""
    def handle(sock: socket.socket) -> None:
        with gauge:
            time.sleep(delay)
        with ctx.wrap_socket(sock, server_side=True) as tls:
            while tls.recv(4096):
                pass
    return _thread_server(handle, "slow-tls-server", parallel=True)


def silent_server() -> contextlib.AbstractContextManager[int]:
    """A server that accepts TCP connections and never says a word (reads until the client
    goes, at most 5 s each)."""
    def hold(sock: socket.socket) -> None:
        while sock.recv(65536):
            pass
    return _thread_server(hold, "silent-server", parallel=True)


def resetting_server() -> contextlib.AbstractContextManager[int]:
    """A server that reads the client's first bytes, then resets the connection (a TCP RST:
    what some firewalls and SNI filters do to a ClientHello)."""
    def reset(sock: socket.socket) -> None:
        sock.recv(65536)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    return _thread_server(reset, "resetting-server", parallel=True)


def alert_server(alert: int) -> contextlib.AbstractContextManager[int]:
    """A server that answers every ClientHello with a fatal TLS alert (what a server
    speaking only SSL 3.0 sends a TLS client: protocol_version)."""
    def refuse(sock: socket.socket) -> None:
        sock.recv(65536)
        sock.sendall(bytes([21, 3, 1, 0, 2, 2, alert]))
    return _thread_server(refuse, "alert-server", parallel=True)


def plaintext_server(greeting: bytes = b"",
                     answer: bytes = b"") -> contextlib.AbstractContextManager[int]:
    """A server that speaks plain text: ``greeting`` on connecting (an SMTP banner...),
    ``answer`` to whatever arrives (an HTTP response...), then it closes.  A context
    manager giving its port."""
    def speak(sock: socket.socket) -> None:
        if greeting:
            sock.sendall(greeting)
        if answer and sock.recv(65536):
            sock.sendall(answer)
            sock.shutdown(socket.SHUT_WR)
            while sock.recv(65536):
                pass
    return _thread_server(speak, "plaintext-server")

#: The repository (the command line's tests run ``python -m aiotls`` from it).
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SUBPROCESS_TIMEOUT = 30.0


def cli_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = ROOT + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env["PYTHONUNBUFFERED"] = "1"
    env.pop("SSL_CERT_FILE", None)
    env.pop("SSL_CERT_DIR", None)
    return env


def run_cli(*args: str, timeout: float = SUBPROCESS_TIMEOUT) -> subprocess.CompletedProcess[str]:
    """``python -m aiotls ARGS`` in a subprocess (bounded), its output as text."""
    return subprocess.run([sys.executable, "-m", "aiotls", *args], cwd=ROOT, env=cli_env(),
                          capture_output=True, text=True, timeout=timeout, check=False)


class ServeProcess:
    """``python -m aiotls serve ARGS`` as a subprocess on 127.0.0.1 (``--port 0`` unless
    ``port`` is given: the port it bound is read from its "listening on" line).  Its
    stdout is read as it comes, so a test can wait for a log line; :meth:`stop` ends it
    (SIGTERM, then kill; this process only, by its PID)."""

    def __init__(self, *args: str, cwd: str = ROOT, port: int = 0,
                 timeout: float = SUBPROCESS_TIMEOUT) -> None:
        self._start([sys.executable, "-m", "aiotls", "serve", "--host", "127.0.0.1",
                     "--port", str(port), *args], cwd, "serve", timeout)

    def _start(self, argv: list[str], cwd: str, name: str, timeout: float) -> None:
        """Run ``argv``, read its stdout as it comes, and wait for its "listening on
        HOST:PORT" line (the port it bound); stopped, with its output, if it never comes."""
        self.proc = subprocess.Popen(
            argv, cwd=cwd, env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True,
        )
        self._lines: list[str] = []
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, daemon=True, name=f"{name}-stdout")
        self._reader.start()
        try:
            line = self.wait_for("listening on", timeout=timeout)
        except AssertionError:
            code, out, err = self.stop()
            raise AssertionError(
                f"{name} did not start (exit status {code}):\n{out}\n{err}") from None
        self.port = int(line.split("listening on ", 1)[1].split(" ", 1)[0].rsplit(":", 1)[1])

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._lock:
                self._lines.append(line.rstrip("\n"))

    @property
    def output(self) -> str:
        """Everything it printed on stdout so far."""
        with self._lock:
            return "\n".join(self._lines)

    def wait_for(self, fragment: str, *, timeout: float = 10.0, count: int = 1) -> str:
        """Wait until ``count`` stdout lines contain ``fragment``; the last of them.  Then
        wait for the output to settle (no new line for 0.2 s, at most 2 s), so that the
        lines printed with it (an error's cause and fix) are in :attr:`output` too."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                found = [line for line in self._lines if fragment in line]
            if len(found) >= count:
                self._settle()
                return found[count - 1]
            if time.monotonic() > deadline or (self.proc.poll() is not None
                                                and not self._reader.is_alive()):
                raise AssertionError(f"serve printed {len(found)} of {count} lines with "
                                     f"{fragment!r} within {timeout} s:\n{self.output}")
            time.sleep(0.02)

    def _settle(self, quiet: float = 0.2, limit: float = 2.0) -> None:
        end = time.monotonic() + limit
        seen, since = -1, time.monotonic()
        while time.monotonic() < end:
            with self._lock:
                now = len(self._lines)
            if now != seen:
                seen, since = now, time.monotonic()
            elif time.monotonic() - since >= quiet:
                return
            time.sleep(0.02)

    def stop(self) -> tuple[int, str, str]:
        """Stop the server (SIGTERM, then kill) and return (exit status, stdout, stderr)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self._reader.join(5)
        assert self.proc.stderr is not None
        err = self.proc.stderr.read()
        self.proc.stderr.close()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        return self.proc.returncode, self.output + "\n", err


class ExampleProcess(ServeProcess):
    """``python examples/SCRIPT ARGS`` as a subprocess, read and stopped like
    :class:`ServeProcess` (it must print "listening on HOST:PORT" once it serves)."""

    def __init__(self, script: str, *args: str, timeout: float = SUBPROCESS_TIMEOUT) -> None:
        self._start([sys.executable, os.path.join(ROOT, "examples", script), *args], ROOT,
                    script, timeout)


# --- the separate environment of the independent X25519MLKEM768 peers ---------------------------

#: tests/peers/pq_peer.py, run by :func:`pq_peer_python`.
PQ_PEER_SCRIPT = os.path.join(os.path.dirname(__file__), "peers", "pq_peer.py")


def pq_peer_python() -> str:
    """The Python of the independent X25519MLKEM768 peers' own environment: tlslite-ng
    0.8.2 with kyber-py (pure-Python ML-KEM) and curl_cffi (BoringSSL), kept apart from the
    environment under test (kyber-py there would change tlslite-ng's defaults for every
    test).  ``$AIOTLS_PQ_PEERS`` names it, else ``.pq-peers/bin/python`` in the checkout
    (.ci/run makes it).  Missing FAILS the test, as a missing openssl does; never a skip."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    python = os.environ.get("AIOTLS_PQ_PEERS") or os.path.join(root, ".pq-peers", "bin", "python")
    if not os.path.exists(python):
        pytest.fail(f"the independent X25519MLKEM768 peers need their own environment at {python}: "
                    "python -m venv .pq-peers && .pq-peers/bin/pip install 'tlslite-ng==0.8.2' "
                    "'kyber-py==1.2.0' 'curl_cffi>=0.10' (or set AIOTLS_PQ_PEERS to its python)",
                    pytrace=False)
    return python
