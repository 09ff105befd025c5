"""Mutation fuzzing of every handshake flight, both roles, TLS 1.2 and TLS 1.3.

Two in-memory :class:`aiotls.TLSConnection` objects run a real handshake.  One of them (the
*sender*) has one of its handshake messages mutated on the way out -- after its own
transcript hash has taken the original bytes, before record protection -- so the other (the
*victim*) receives well-framed, correctly encrypted records whose plaintext is hostile: the
ClientHello and ServerHello, EncryptedExtensions, CertificateRequest, Certificate (server and
client), CertificateVerify, ServerKeyExchange, ClientKeyExchange, Finished, NewSessionTicket,
a HelloRetryRequest's second ClientHello, a resumption's PSK hellos, and a post-handshake
client-certificate flight.

Scenarios: TLS 1.2 and 1.3, either side the victim, with ECDSA P-256/P-384, RSA and Ed25519
certificates, mutual TLS (client certificates, and an empty client Certificate when auth is
optional), resumption, HelloRetryRequest, post-handshake authentication and ALPN.

The mutations are seeded (``random.Random(f"{scenario}:{seed}")``): bit flips, interesting
bytes, truncation, insertion, deletion, length fields set to edge values, extension-level
edits (drop, empty, truncate, duplicate, garbage, well-formed bodies of known extensions out
of place, unknown types, TACK 0xF300 included), edits inside the first certificate's DER (its
X.509 version among them), and CA-issued certificates over odd keys (DSA, secp256k1, Ed448,
X25519, X448, RSA-1024, e=3) in place of the leaf; a quarter of the cases stack two or
three.  The choices are seeded, the handshake's keys and randoms are not: the failure
report's message bytes are the input to look at.

Whatever the mutation, neither side may:

* raise anything from ``receive_data`` (errors come as ``ConnectionTerminated`` events),
* end with anything but an aiotls ``TLSError``, or with an ``internal_error`` (an error
  blaming aiotls for the peer's input), or with ``decryption_failed`` (an alert TLS 1.2 and
  1.3 must never send),
* keep talking forever (bounded rounds, bounded time per case), or buffer more than one
  record of input / emit unbounded output.

A failure prints the scenario, the seed, the mutation, the message before and after (hex)
and the error, and how to run that one case again::

    python -c "from tests.test_fuzz import run_case; run_case('tls13-mtls/server', 17)"

The test suite runs a small seeded budget; the ``slow`` marker runs a large one (a medium
one with ``AIOTLS_SLOW_BUDGET=small``, as CI does).
"""

from __future__ import annotations

import datetime
import functools
import os
import random
import ssl
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, rsa, x448, x25519
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

import aiotls
from aiotls.errors import AlertDescription, AlertReceived, TLSError
from aiotls.events import ConnectionTerminated, DataReceived, Event, HandshakeCompleted
from tests.certs import CA, KeyType
from tests.helpers import split_handshake_messages, tap_handshake

TLS12, TLS13 = "TLSv1.2", "TLSv1.3"
HANDSHAKE = 22
#: What a connection may hold between calls: at most one incomplete record.
MAX_PARTIAL_RECORD = 5 + 2**14 + 2048
#: Far more than any flight here (a few KiB): output beyond it is runaway growth.
MAX_OUTPUT = 256 * 1024
#: Seconds one case may take (a clean one takes a few tens of milliseconds).
CASE_SECONDS = 10.0
ROUNDS = 40

SLOW_BUDGET = os.environ.get("AIOTLS_SLOW_BUDGET")
QUICK_CASES = 40  # per scenario, in the default run (about 5 s in all)
HEAVY_CASES = 300 if SLOW_BUDGET == "small" else 3000

pytestmark = pytest.mark.timeout(600)


# --- scenarios -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Scenario:
    name: str
    version: str
    victim: str  # "client" or "server": who receives the mutated message
    mtls: bool = False
    key_type: KeyType = "ecdsa-p256"
    client_key_type: KeyType = "ecdsa-p256"
    resume: bool = False
    hrr: bool = False
    pha: bool = False
    alpn: bool = False
    #: the server asks for a certificate (optional) and the client has none
    no_client_cert: bool = False


def _scenarios() -> list[Scenario]:
    out = []
    for version in (TLS12, TLS13):
        v = "tls12" if version == TLS12 else "tls13"
        for victim in ("client", "server"):
            out.append(Scenario(f"{v}/{victim}", version, victim))
            out.append(Scenario(f"{v}-mtls/{victim}", version, victim, mtls=True))
            out.append(Scenario(f"{v}-rsa-mtls/{victim}", version, victim, mtls=True,
                                key_type="rsa2048", client_key_type="rsa2048"))
            out.append(Scenario(f"{v}-ed25519-mtls/{victim}", version, victim, mtls=True,
                                key_type="ed25519", client_key_type="ed25519"))
            out.append(Scenario(f"{v}-resume/{victim}", version, victim, resume=True))
        out.append(Scenario(f"{v}-p384/client", version, "client", key_type="ecdsa-p384"))
        for victim in ("client", "server"):
            out.append(Scenario(f"{v}-alpn/{victim}", version, victim, alpn=True))
        out.append(Scenario(f"{v}-no-client-cert/server", version, "server",
                            no_client_cert=True))
    for victim in ("client", "server"):
        out.append(Scenario(f"tls13-hrr/{victim}", TLS13, victim, hrr=True))
        out.append(Scenario(f"tls13-pha/{victim}", TLS13, victim, mtls=True, pha=True))
    return out


SCENARIOS = {s.name: s for s in _scenarios()}


@dataclass
class _PKI:
    ca_file: str
    servers: dict[str, tuple[str, str]]
    clients: dict[str, tuple[str, str]]
    #: DER certificates the CA issued for "localhost" (server and client use) over keys
    #: TLS cannot sign with or aiotls does not take: swapped in for a peer's leaf.
    zoo: list[tuple[str, bytes]]


def _zoo(ca: CA) -> list[tuple[str, bytes]]:
    keys: list[tuple[str, Any]] = [
        ("dsa2048", dsa.generate_private_key(2048).public_key()),
        ("secp256k1", ec.generate_private_key(ec.SECP256K1()).public_key()),
        ("secp521r1", ec.generate_private_key(ec.SECP521R1()).public_key()),
        ("ed448", ed448.Ed448PrivateKey.generate().public_key()),
        ("x25519", x25519.X25519PrivateKey.generate().public_key()),
        ("x448", x448.X448PrivateKey.generate().public_key()),
        ("rsa1024", rsa.generate_private_key(65537, 1024).public_key()),
        ("rsa2048-e3", rsa.generate_private_key(3, 2048).public_key()),
    ]
    now = datetime.datetime.now(datetime.UTC)
    out = []
    for name, public in keys:
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
            .issuer_name(ca.cert.subject)
            .public_key(public)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]),
                           critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH,
                                                  ExtendedKeyUsageOID.CLIENT_AUTH]),
                           critical=False)
        )
        cert = builder.sign(ca.key, hashes.SHA256())
        out.append((name, cert.public_bytes(serialization.Encoding.DER)))
    return out


@functools.lru_cache(maxsize=1)
def _pki() -> _PKI:
    """A throwaway PKI of its own (so run_case works outside pytest); kept for the process."""
    ca = CA()
    directory = tempfile.mkdtemp(prefix="aiotls-fuzz-")
    ca_file = os.path.join(directory, "ca.pem")
    with open(ca_file, "wb") as f:
        f.write(ca.cert_pem)
    servers, clients = {}, {}
    for key_type in ("ecdsa-p256", "ecdsa-p384", "rsa2048", "ed25519"):
        issued = ca.issue("localhost", key_type=key_type)  # type: ignore[arg-type]
        servers[key_type] = issued.write(directory, name=f"server-{key_type}")
        issued = ca.issue("client.example.test", key_type=key_type,  # type: ignore[arg-type]
                          client=True, server=False)
        clients[key_type] = issued.write(directory, name=f"client-{key_type}")
    return _PKI(ca_file, servers, clients, _zoo(ca))


@functools.cache
def _contexts(scenario: Scenario) -> tuple[aiotls.TLSContext, aiotls.TLSContext]:
    """(client context, server context) for a scenario (made once: handshakes are the cost)."""
    pki = _pki()
    server = aiotls.TLSContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(*pki.servers[scenario.key_type])
    client = aiotls.TLSContext(ssl.PROTOCOL_TLS_CLIENT)
    client.load_verify_locations(cafile=pki.ca_file)
    client.maximum_version = ssl.TLSVersion[scenario.version.replace(".", "_")]
    if scenario.mtls:
        client.load_cert_chain(*pki.clients[scenario.client_key_type])
        server.load_verify_locations(cafile=pki.ca_file)
        server.verify_mode = ssl.CERT_REQUIRED
        server.post_handshake_auth = scenario.pha
        client.post_handshake_auth = scenario.pha
    if scenario.no_client_cert:
        server.load_verify_locations(cafile=pki.ca_file)
        server.verify_mode = ssl.CERT_OPTIONAL
    if scenario.alpn:
        client.set_alpn_protocols(["h2", "http/1.1"])
        server.set_alpn_protocols(["http/1.1", "h2"])
    if scenario.hrr:
        client.set_groups(["x25519", "secp256r1"])  # a key share for x25519 only
        server.set_groups(["secp256r1"])           # so the server asks again
    return client, server


@functools.cache
def _session(scenario: Scenario) -> aiotls.TLSSession:
    client_ctx, server_ctx = _contexts(scenario)
    client = aiotls.TLSConnection(client_ctx, server_hostname="localhost")
    server = aiotls.TLSConnection(server_ctx, server_side=True)
    _pump(client, server, [], [])
    client.send_data(b"x")  # (TLS 1.3 tickets arrive after the handshake)
    _pump(client, server, [], [])
    session = client.session
    assert session is not None and session.has_ticket, "no session to resume"
    return session


# --- handshake message surgery -------------------------------------------------------------


def _u(data: bytes, pos: int, n: int) -> int:
    return int.from_bytes(data[pos:pos + n], "big")


def _ext_block(msg_type: int, body: bytes, tls13: bool) -> int | None:
    """Where the 2-byte length of the extensions block starts in a message body, if any."""
    try:
        if msg_type == 1:  # ClientHello
            pos = 34
            pos += 1 + body[pos]
            pos += 2 + _u(body, pos, 2)
            pos += 1 + body[pos]
        elif msg_type == 2:  # ServerHello / HelloRetryRequest
            pos = 34
            pos += 1 + body[pos] + 3
        elif msg_type == 8:  # EncryptedExtensions
            pos = 0
        elif msg_type == 13 and tls13:  # CertificateRequest
            pos = 1 + body[0]
        elif msg_type == 4 and tls13:  # NewSessionTicket
            pos = 8
            pos += 1 + body[pos]
            pos += 2 + _u(body, pos, 2)
        else:
            return None
    except IndexError:
        return None
    return pos if pos + 2 <= len(body) else None


def _parse_exts(blob: bytes) -> list[tuple[int, bytes]] | None:
    out, pos = [], 0
    while pos < len(blob):
        if len(blob) - pos < 4:
            return None
        length = _u(blob, pos + 2, 2)
        if pos + 4 + length > len(blob):
            return None
        out.append((_u(blob, pos, 2), blob[pos + 4:pos + 4 + length]))
        pos += 4 + length
    return out


def _build_exts(exts: list[tuple[int, bytes]]) -> bytes:
    blob = b"".join(t.to_bytes(2, "big") + len(d).to_bytes(2, "big") + d for t, d in exts)
    return len(blob).to_bytes(2, "big") + blob


def _first_certificate(body: bytes, tls13: bool) -> tuple[int, int] | None:
    """(start, end) of the first certificate's DER in a Certificate message body."""
    pos = 1 + body[0] if tls13 else 0
    if len(body) < pos + 6:
        return None
    length = _u(body, pos + 3, 3)
    start = pos + 6
    return (start, start + length) if start + length <= len(body) and length else None


#: Extension types worth inserting: known ones (in and out of place) and odd ones.
EXT_TYPES = [0, 1, 5, 10, 11, 13, 14, 15, 16, 17, 18, 21, 22, 23, 27, 28, 35, 41, 42, 43, 44,
             45, 47, 48, 49, 50, 51, 0xFF01, 0xF300, 0x3374, 0x0A0A, 0xFFFF, 57, 13172]
INTERESTING = [0x00, 0x01, 0x02, 0x03, 0x04, 0x7F, 0x80, 0xFE, 0xFF]
_X25519_SHARE = b"\x00\x1d\x00\x20" + bytes(range(32))
#: Well-formed bodies of known extensions, in the shapes of either side (so that an
#: extension lands, parsed, where the protocol does not expect it).
SAMPLE_BODIES: dict[int, list[bytes]] = {
    0: [b"", b"\x00\x0c\x00\x00\x09localhost"],
    1: [b"\x01", b"\x05"],
    5: [b"", b"\x01\x00\x00\x00\x00", b"\x01\x00\x00\x03abc"],
    10: [b"\x00\x02\x00\x1d", b"\x00\x04\x00\x17\x01\x00", b"\x00\x00"],
    11: [b"\x01\x00", b"\x01\x01"],
    13: [b"\x00\x02\x04\x03", b"\x00\x02\x08\x07", b"\x00\x02\x02\x01"],
    16: [b"\x00\x03\x02h2", b"\x00\x06\x02h2\x02h3", b"\x00\x01\x00"],
    18: [b"", b"\x00\x00"],
    21: [bytes(5)],
    22: [b""],
    23: [b""],
    27: [b"\x02\x00\x01", b"\x02\x00\x02"],
    28: [b"\x00\x40", b"\x40\x01", b"\x00\x00"],
    35: [b"", b"\x01\x02\x03"],
    41: [b"\x00\x00", b"\x00\x05", b"\x00\x0b\x00\x05abcde\x00\x00\x00\x01\x00\x21\x20"
         + bytes(32)],
    42: [b"", b"\x00\x00\x40\x00"],
    43: [b"\x03\x04", b"\x03\x03", b"\x02\x03\x04", b"\x04\x03\x04\x03\x03", b"\x7f\x1c"],
    44: [b"\x00\x03abc"],
    45: [b"\x01\x01", b"\x01\x00", b"\x00"],
    47: [b"\x00\x00", b"\x00\x05\x00\x03\x30\x01\x00"],
    49: [b""],
    50: [b"\x00\x02\x04\x03"],
    51: [_X25519_SHARE, b"\x00\x24" + _X25519_SHARE, b"\x00\x17", b"\x00\x00",
         b"\x01\x00\x00\x00"],
    0xFF01: [b"\x00", b"\x0c" + bytes(12)],
}


def _mutate_bytes(rng: random.Random, data: bytes) -> tuple[bytes, str]:
    """One generic mutation of a byte string."""
    b = bytearray(data)
    kind = rng.choice(["flip", "flip", "byte", "truncate", "insert", "delete", "dup",
                       "len16", "len24", "zero-run"])
    if not b:
        kind = "insert"
    if kind == "flip":
        n = rng.randint(1, 4)
        for _ in range(n):
            i = rng.randrange(len(b))
            b[i] ^= 1 << rng.randrange(8)
        return bytes(b), f"flip {n} bits"
    if kind == "byte":
        i = rng.randrange(len(b))
        b[i] = rng.choice(INTERESTING)
        return bytes(b), f"byte {i} = {b[i]:#x}"
    if kind == "truncate":
        n = rng.randrange(len(b))
        return bytes(b[:n]), f"truncate to {n}"
    if kind == "insert":
        i = rng.randint(0, len(b))
        extra = rng.randbytes(rng.choice([1, 2, 3, 8, 40]))
        return bytes(b[:i] + extra + b[i:]), f"insert {len(extra)} at {i}"
    if kind == "delete":
        i = rng.randrange(len(b))
        n = rng.randint(1, min(16, len(b) - i))
        return bytes(b[:i] + b[i + n:]), f"delete {n} at {i}"
    if kind == "dup":
        i = rng.randrange(len(b))
        n = rng.randint(1, min(32, len(b) - i))
        return bytes(b[:i + n] + b[i:i + n] + b[i + n:]), f"duplicate {n} at {i}"
    if kind in ("len16", "len24"):
        width = 2 if kind == "len16" else 3
        if len(b) < width:
            return bytes(b[:-1]), "truncate by 1"
        i = rng.randrange(len(b) - width + 1)
        value = rng.choice([0, 1, _u(bytes(b), i, width) + 1, max(_u(bytes(b), i, width) - 1, 0),
                            (1 << (8 * width)) - 1, len(b) - i])
        value %= 1 << (8 * width)
        b[i:i + width] = value.to_bytes(width, "big")
        return bytes(b), f"{width}-byte field at {i} = {value}"
    i = rng.randrange(len(b))
    n = rng.randint(1, min(8, len(b) - i))
    b[i:i + n] = bytes(n)
    return bytes(b), f"zero {n} at {i}"


def _mutate_extensions(rng: random.Random, exts: list[tuple[int, bytes]]
                       ) -> tuple[list[tuple[int, bytes]], str]:
    exts = list(exts)
    kinds = ["insert-empty", "insert-random", "insert-copy", "insert-known", "insert-known"]
    if exts:
        kinds += ["drop", "empty", "truncate", "garbage", "duplicate", "mutate", "mutate",
                  "retype", "swap"]
    kind = rng.choice(kinds)
    if kind == "insert-known" or (kind in ("mutate", "retype") and rng.random() < 0.3):
        ext_type = rng.choice(list(SAMPLE_BODIES))
        data = rng.choice(SAMPLE_BODIES[ext_type])
        present = [i for i, (t, _) in enumerate(exts) if t == ext_type]
        if present and rng.random() < 0.7:  # replace the body of the one already there
            exts[present[0]] = (ext_type, data)
            return exts, f"extension {ext_type:#06x} body set to {data.hex()}"
        exts.insert(rng.randint(0, len(exts)), (ext_type, data))
        return exts, f"insert extension {ext_type:#06x} ({data.hex()})"
    if kind.startswith("insert"):
        ext_type = rng.choice(EXT_TYPES)
        if kind == "insert-empty":
            data = b""
        elif kind == "insert-random" or not exts:
            data = rng.randbytes(rng.choice([1, 2, 3, 4, 6, 33]))
        else:
            data = rng.choice(exts)[1]
        exts.insert(rng.randint(0, len(exts)), (ext_type, data))
        return exts, f"{kind} extension {ext_type:#06x} ({data.hex()})"
    i = rng.randrange(len(exts))
    ext_type, data = exts[i]
    what = f"extension {ext_type:#06x}"
    if kind == "drop":
        del exts[i]
        return exts, f"drop {what}"
    if kind == "empty":
        exts[i] = (ext_type, b"")
        return exts, f"empty {what}"
    if kind == "truncate":
        n = rng.randrange(len(data)) if data else 0
        exts[i] = (ext_type, data[:n])
        return exts, f"truncate {what} to {n}"
    if kind == "garbage":
        exts[i] = (ext_type, data + rng.randbytes(rng.randint(1, 4)))
        return exts, f"trailing garbage in {what}"
    if kind == "duplicate":
        exts.insert(rng.randint(0, len(exts)), exts[i])
        return exts, f"duplicate {what}"
    if kind == "retype":
        new_type = rng.choice(EXT_TYPES)
        exts[i] = (new_type, data)
        return exts, f"{what} retyped as {new_type:#06x}"
    if kind == "swap" and len(exts) > 1:
        j = rng.randrange(len(exts))
        exts[i], exts[j] = exts[j], exts[i]
        return exts, f"swap extensions {i} and {j}"
    new, how = _mutate_bytes(rng, data)
    exts[i] = (ext_type, new)
    return exts, f"{what}: {how}"


def _mutate_certificate(rng: random.Random, body: bytes, tls13: bool) -> tuple[bytes, str] | None:
    span = _first_certificate(body, tls13)
    if span is None:
        return None
    start, end = span
    der = body[start:end]
    version_at = der.find(b"\xa0\x03\x02\x01")
    if rng.random() < 0.25:
        name, new_der = rng.choice(_pki().zoo)
        how = f"replaced by a CA-issued certificate over a {name} key"
    elif version_at >= 0 and rng.random() < 0.2:
        value = rng.choice([0, 1, 3, 4, 7, 0x7F, 0x80, 0xFF])
        new_der = der[:version_at + 4] + bytes([value]) + der[version_at + 5:]
        how = f"X.509 version byte = {value}"
    else:
        new_der, how = _mutate_bytes(rng, der)
    # fix the certificate's 3-byte length and the list's
    list_at = start - 6
    new_body = bytearray(body[:start - 3] + len(new_der).to_bytes(3, "big") + new_der
                         + body[end:])
    list_len = _u(body, list_at, 3) + len(new_der) - len(der)
    new_body[list_at:list_at + 3] = list_len.to_bytes(3, "big")
    return bytes(new_body), f"first certificate DER: {how}"


def mutate_message(rng: random.Random, msg: bytes, tls13: bool) -> tuple[bytes, str]:
    """One to three seeded mutations of one handshake message (4-byte header included)."""
    hows = []
    for _ in range(1 if rng.random() < 0.75 else rng.randint(2, 3)):
        msg, how = _mutate_once(rng, msg, tls13)
        hows.append(how)
    return msg, "; then ".join(hows)


def _mutate_once(rng: random.Random, msg: bytes, tls13: bool) -> tuple[bytes, str]:
    msg_type, body = msg[0], msg[4:]
    new_body: bytes | None = None
    how = ""
    choice = rng.random()
    block = _ext_block(msg_type, body, tls13)
    if block is not None and choice < 0.5:
        exts = _parse_exts(body[block + 2:block + 2 + _u(body, block, 2)])
        if exts is not None:
            new_exts, how = _mutate_extensions(rng, exts)
            tail = body[block + 2 + _u(body, block, 2):]
            new_body = body[:block] + _build_exts(new_exts) + tail
    elif msg_type == 11 and choice < 0.6:
        found = _mutate_certificate(rng, body, tls13)
        if found is not None:
            new_body, how = found
    if new_body is None:
        new_body, how = _mutate_bytes(rng, body)
    if rng.random() < 0.1:  # leave the message length as it was: a framing mismatch
        header = msg[:4]
        how += " (length header kept)"
    else:
        header = bytes([msg_type]) + len(new_body).to_bytes(3, "big")
    if rng.random() < 0.03:
        header = bytes([rng.choice([0, 3, 5, 6, 9, 14, 16, 20, 24, 25, 254])]) + header[1:]
        how += f" (message type {header[0]})"
    return header + new_body, how


# --- running one case ---------------------------------------------------------------------


@dataclass
class _Tap:
    """Mutates the ``target``-th handshake message a connection sends (counting from 0)."""

    rng: random.Random
    tls13: bool
    target: int | None
    sent: list[int] = field(default_factory=list)  # types of the messages sent so far
    original: bytes = b""
    mutated: bytes = b""
    how: str = ""

    def install(self, conn: aiotls.TLSConnection) -> None:
        offset = len(self.sent)  # (a client's ClientHello went out before: see _run)

        def edit(message: bytes) -> bytes:
            index = offset + len(seen) - 1
            self.sent.append(message[0])
            if index != self.target:
                return message
            self.original = message
            self.mutated, self.how = mutate_message(self.rng, message, self.tls13)
            return self.mutated

        seen = tap_handshake(conn, edit)


@dataclass
class Outcome:
    events: dict[str, list[Event]]
    rounds: int
    seconds: float
    sent_types: list[int]


class FuzzFailure(AssertionError):
    pass


def _feed(conn: aiotls.TLSConnection, data: bytes, events: list[Event]) -> None:
    if conn.state in (aiotls.ConnectionState.FAILED, aiotls.ConnectionState.CLOSED):
        return
    conn.receive_data(data)  # must never raise: errors are events
    events += conn.events()
    if len(conn._inbuf) >= MAX_PARTIAL_RECORD:
        raise FuzzFailure(f"input buffer grew to {len(conn._inbuf)} bytes")


def _pump(client: aiotls.TLSConnection, server: aiotls.TLSConnection,
          client_events: list[Event], server_events: list[Event]) -> int:
    for rounds in range(1, ROUNDS + 1):
        quiet = True
        for src, dst, events in ((client, server, server_events),
                                 (server, client, client_events)):
            out = src.data_to_send()
            if len(out) > MAX_OUTPUT:
                raise FuzzFailure(f"{len(out)} bytes of output in one round")
            if out:
                quiet = False
                _feed(dst, bytes(out), events)
        if quiet:
            return rounds
    raise FuzzFailure(f"the connections were still talking after {ROUNDS} rounds")


def _run(scenario: Scenario, tap: _Tap) -> Outcome:
    client_ctx, server_ctx = _contexts(scenario)
    session = _session(scenario) if scenario.resume else None
    start = time.monotonic()
    client = aiotls.TLSConnection(client_ctx, server_hostname="localhost", session=session)
    server = aiotls.TLSConnection(server_ctx, server_side=True)
    events: dict[str, list[Event]] = {"client": [], "server": []}
    hello = client.data_to_send()
    if scenario.victim == "server":
        # The client made its ClientHello when it was created, before the tap was on: it
        # is message #0, mutated here in its plaintext record.
        if tap.target == 0:
            hello = _mutate_first_hello(tap, hello)
        else:
            tap.sent.append(1)
    tap.install(server if scenario.victim == "client" else client)
    _feed(server, hello, events["server"])
    rounds = _pump(client, server, events["client"], events["server"])
    if all(_completed(events[r]) and not _terminated(events[r]) for r in events):
        if scenario.pha:
            server.verify_client_post_handshake()
            rounds += _pump(client, server, events["client"], events["server"])
        for src, dst in ((client, "server"), (server, "client")):
            if src.state is aiotls.ConnectionState.OPEN:
                src.send_data(b"ping " + dst.encode())
        rounds += _pump(client, server, events["client"], events["server"])
    seconds = time.monotonic() - start
    return Outcome(events, rounds, seconds, list(tap.sent))


def _mutate_first_hello(tap: _Tap, flight: bytes) -> bytes:
    """The ClientHello is sealed when the client is created, before a tap can be installed:
    mutate it in the plaintext record instead."""
    assert flight[0] == HANDSHAKE
    body = flight[5:]
    messages = split_handshake_messages(body)
    assert messages is not None and len(messages) == 1 and messages[0][0] == 1
    tap.original = messages[0]
    tap.mutated, tap.how = mutate_message(tap.rng, messages[0], tap.tls13)
    tap.sent.append(1)
    return flight[:3] + len(tap.mutated).to_bytes(2, "big") + tap.mutated


def _completed(events: list[Event]) -> bool:
    return any(isinstance(e, HandshakeCompleted) for e in events)


def _terminated(events: list[Event]) -> list[ConnectionTerminated]:
    return [e for e in events if isinstance(e, ConnectionTerminated)]


@functools.cache
def message_types(scenario: Scenario) -> tuple[int, ...]:
    """The handshake message types the sender sends in a clean run of the scenario."""
    outcome = _run(scenario, _Tap(random.Random(0), scenario.version == TLS13, None))
    for role, events in outcome.events.items():
        assert _completed(events) and not _terminated(events), \
            f"clean run of {scenario.name}: {role} events {events}"
    return tuple(outcome.sent_types)


def _describe(scenario: Scenario, seed: int, tap: _Tap, problem: str) -> str:
    def hexdump(data: bytes) -> str:
        text = data.hex()
        return text if len(text) <= 4000 else text[:4000] + f"... ({len(data)} bytes)"

    return (f"fuzz case {scenario.name!r} seed {seed}: {problem}\n"
            f"  mutated message #{tap.target} (type {tap.original[:1].hex()}): "
            f"{tap.how}\n"
            f"  original: {hexdump(tap.original)}\n"
            f"  mutated:  {hexdump(tap.mutated)}\n"
            f"  reproduce: python -c \"from tests.test_fuzz import run_case; "
            f"run_case({scenario.name!r}, {seed})\"")


def run_case(name: str, seed: int) -> Outcome:
    """Run one fuzz case; raise FuzzFailure (with the input) if aiotls misbehaved."""
    scenario = SCENARIOS[name]
    types = message_types(scenario)
    rng = random.Random(f"{name}:{seed}")
    target = rng.randrange(len(types))
    tap = _Tap(rng, scenario.version == TLS13, target)
    try:
        outcome = _run(scenario, tap)
    except FuzzFailure as exc:
        raise FuzzFailure(_describe(scenario, seed, tap, str(exc))) from None
    except Exception as exc:  # out of receive_data / data_to_send / send_data
        raise FuzzFailure(_describe(scenario, seed, tap,
                                    f"{type(exc).__name__} escaped: {exc}")) from exc
    if not tap.original:
        raise FuzzFailure(_describe(scenario, seed, tap,
                                    f"message #{target} of {types} was never sent"))
    if outcome.seconds > CASE_SECONDS:
        raise FuzzFailure(_describe(scenario, seed, tap, f"took {outcome.seconds:.1f} s"))
    for role, events in outcome.events.items():
        for event in _terminated(events):
            err = event.error
            if err is None:
                continue
            if not isinstance(err, TLSError):
                raise FuzzFailure(_describe(scenario, seed, tap,
                                            f"{role} ended with {err!r}, not a TLSError"))
            if err.code == "internal-error" or err.alert is AlertDescription.internal_error:
                peer = "server" if role == "client" else "client"
                who = (f"the {peer} blamed itself (the {role} got its internal_error alert)"
                       if isinstance(err, AlertReceived) else f"the {role} blamed itself")
                raise FuzzFailure(_describe(scenario, seed, tap, f"{who}: {err}"))
            if err.alert is AlertDescription.decryption_failed:  # RFC 5246 7.2.2, 8446 6
                raise FuzzFailure(_describe(scenario, seed, tap,
                                            f"{role}: alert decryption_failed: {err}"))
        if _completed(events) and not _terminated(events):
            data = b"".join(bytes(e.data) for e in events if isinstance(e, DataReceived))
            peer = "server" if role == "client" else "client"
            if data and data != b"ping " + role.encode():
                raise FuzzFailure(_describe(scenario, seed, tap,
                                            f"{role} received {data!r} from the {peer}"))
    return outcome


def fuzz(name: str, seeds: range) -> None:
    """Run the cases; fail with the first few failures' inputs."""
    failures = []
    for seed in seeds:
        try:
            run_case(name, seed)
        except FuzzFailure as exc:
            failures.append(str(exc))
            if len(failures) >= 3:
                break
    assert not failures, "\n\n".join(failures)


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_clean_run_sends_what_is_fuzzed(name: str) -> None:
    """The fuzzer's own check: a clean run completes, and each scenario fuzzes the flights
    it is meant to (client certificates, HelloRetryRequest, PSK, post-handshake auth)."""
    scenario = SCENARIOS[name]
    types = message_types(scenario)
    expected: set[int] = {1} if scenario.victim == "server" else {2}
    if scenario.victim == "client" and not scenario.resume:
        expected |= {11, 15} if scenario.version == TLS13 else {11, 12}
    if scenario.victim == "client" and scenario.version == TLS13:
        expected |= {8, 20, 4}
    if scenario.mtls and scenario.victim == "server":
        expected |= {11, 15}
    if scenario.no_client_cert:
        expected |= {11}  # (empty)
    if scenario.mtls and scenario.victim == "client" and not scenario.pha:
        expected |= {13}
    if scenario.victim == "server" and scenario.version == TLS12 and not scenario.resume:
        expected |= {16}
    sent = {11 if t == 25 else t for t in types}  # (25: a compressed Certificate)
    assert expected <= sent, f"{name}: sent {types}, expected {sorted(expected)}"
    if scenario.hrr and scenario.victim == "server":
        assert types.count(1) == 2, f"no HelloRetryRequest: {types}"
    if scenario.pha and scenario.victim == "client":
        assert 13 in types, f"no post-handshake CertificateRequest: {types}"


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_fuzz_flights(name: str) -> None:
    fuzz(name, range(QUICK_CASES))


@pytest.mark.slow
@pytest.mark.parametrize("name", list(SCENARIOS))
def test_fuzz_flights_heavy(name: str) -> None:
    fuzz(name, range(QUICK_CASES, QUICK_CASES + HEAVY_CASES))


def test_failure_report_carries_the_input() -> None:
    """A case that fails says which input did it, so it can be replayed."""
    scenario = SCENARIOS["tls13/client"]
    tap = _Tap(random.Random(1), True, 0, original=b"\x02\x00\x00\x01\xaa",
               mutated=b"\x02\x00\x00\x01\xbb", how="byte 0 = 0xbb")
    tap.sent.append(2)
    text = _describe(scenario, 7, tap, "the client blamed itself")
    assert "02000001aa" in text and "02000001bb" in text and "byte 0 = 0xbb" in text
    assert "run_case('tls13/client', 7)" in text

