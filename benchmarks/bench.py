"""aiotls versus stdlib asyncio ``ssl`` and uvloop's native TLS, in one process run.

Usage::

    python benchmarks/bench.py            # quick run (small sizes), prints the table
    python benchmarks/bench.py --full     # the sizes of docs/performance.md
    python benchmarks/bench.py --json results.json --plot results.png

Every scenario runs for each implementation back to back in this process, over
loopback TCP with client and server in the same event loop (so each figure is
the CPU cost of *both* ends, like for like):

* ``stdlib``         asyncio default loop + ``ssl`` (OpenSSL)
* ``aiotls``         asyncio default loop + aiotls
* ``uvloop``         uvloop + ``ssl`` (uvloop's own TLS protocol, OpenSSL)
* ``aiotls+uvloop``  uvloop + aiotls
* ``facade``         asyncio default loop's own TLS (``sslproto``) handed an aiotls
                     context: the ``ssl`` facade, ``wrap_bio()`` -> ``aiotls.compat.TLSObject``
* ``facade+uvloop``  uvloop's own TLS protocol handed an aiotls context

Ratios printed are aiotls/stdlib (default loop), aiotls+uvloop/uvloop, facade/stdlib and
facade+uvloop/uvloop.  For
the "higher is better" scenarios a ratio above 1 means aiotls is faster; for
memory a ratio below 1 means aiotls uses less.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import gc
import json
import os
import platform
import ssl
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import uvloop

import aiotls
import aiotls.asyncio as aio
from aiotls.testing import generate_pki

IMPLS = ("stdlib", "aiotls", "facade", "uvloop", "aiotls+uvloop", "facade+uvloop")
#: the ratios reported: (aiotls name, baseline)
PAIRS = (("aiotls", "stdlib"), ("aiotls+uvloop", "uvloop"), ("facade", "stdlib"),
         ("facade+uvloop", "uvloop"))


# --- contexts --------------------------------------------------------------------------------


def _ssl_ctx_ptr(ctx: ssl.SSLContext) -> int:
    # PySSLContext starts with PyObject_HEAD followed by the SSL_CTX pointer.
    return ctypes.c_void_p.from_address(id(ctx) + 2 * ctypes.sizeof(ctypes.c_void_p)).value or 0


def _set_tls13_suite(ctx: ssl.SSLContext, suite: str) -> None:
    """The stdlib cannot choose TLS 1.3 suites; call OpenSSL's SSL_CTX_set_ciphersuites."""
    import _ssl

    lib = ctypes.CDLL(_ssl.__file__)
    fn = lib.SSL_CTX_set_ciphersuites
    fn.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
    if fn(_ssl_ctx_ptr(ctx), suite.encode()) != 1:
        raise RuntimeError(f"OpenSSL refused TLS 1.3 suite {suite}")


@dataclass
class Suite:
    label: str
    version: str
    aiotls_name: str
    openssl_name: str


SUITES = {
    "tls13-aes128gcm": Suite("TLS 1.3 AES-128-GCM", "TLSv1.3", "TLS_AES_128_GCM_SHA256",
                             "TLS_AES_128_GCM_SHA256"),
    "tls13-chacha20": Suite("TLS 1.3 ChaCha20-Poly1305", "TLSv1.3",
                            "TLS_CHACHA20_POLY1305_SHA256", "TLS_CHACHA20_POLY1305_SHA256"),
    "tls12-aes128gcm": Suite("TLS 1.2 ECDHE-ECDSA-AES128-GCM", "TLSv1.2",
                             "ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-ECDSA-AES128-GCM-SHA256"),
}


class ResumingContext(ssl.SSLContext):
    """An ``ssl.SSLContext`` whose connections resume ``session``.

    asyncio's and uvloop's ``create_connection`` take no session argument; both build their
    ``SSLObject`` with ``wrap_bio``, so this is where the session goes in.
    """

    session: ssl.SSLSession | None = None

    def wrap_bio(self, incoming: ssl.MemoryBIO, outgoing: ssl.MemoryBIO, server_side: bool = False,
                 server_hostname: str | bytes | None = None,
                 session: ssl.SSLSession | None = None) -> ssl.SSLObject:
        return super().wrap_bio(incoming, outgoing, server_side, server_hostname,
                                session or self.session)


class ResumingTLSContext(aiotls.TLSContext):
    """The same for an aiotls context handed to the loop's own TLS (the ``ssl`` facade)."""

    _bench_session: aiotls.TLSSession | None = None  # (private: changes no setting)

    def wrap_bio(self, incoming: ssl.MemoryBIO, outgoing: ssl.MemoryBIO, server_side: bool = False,
                 server_hostname: str | bytes | None = None,
                 session: Any = None) -> ssl.SSLObject:
        return super().wrap_bio(incoming, outgoing, server_side, server_hostname,
                                session or self._bench_session)


class Contexts:
    def __init__(self, tmp: str, key_type: str) -> None:
        self.pki = generate_pki(tmp, key_type=key_type)

    def stdlib(self, suite: Suite | None) -> tuple[ssl.SSLContext, ssl.SSLContext]:
        server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        server.load_cert_chain(self.pki.cert_file, self.pki.key_file)
        client = ResumingContext(ssl.PROTOCOL_TLS_CLIENT)
        client.load_verify_locations(self.pki.ca_file)
        if suite is not None:
            v = ssl.TLSVersion.TLSv1_3 if suite.version == "TLSv1.3" else ssl.TLSVersion.TLSv1_2
            for c in (server, client):
                c.minimum_version = c.maximum_version = v
                if suite.version == "TLSv1.3":
                    _set_tls13_suite(c, suite.openssl_name)
                else:
                    c.set_ciphers(suite.openssl_name)
        return server, client

    def aiotls(self, suite: Suite | None) -> tuple[aiotls.TLSContext, aiotls.TLSContext]:
        server = aiotls.TLSContext(ssl.PROTOCOL_TLS_SERVER)
        server.load_cert_chain(self.pki.cert_file, self.pki.key_file)
        client = ResumingTLSContext(ssl.PROTOCOL_TLS_CLIENT)
        client.load_verify_locations(self.pki.ca_file)
        if suite is not None:
            v = ssl.TLSVersion.TLSv1_3 if suite.version == "TLSv1.3" else ssl.TLSVersion.TLSv1_2
            for c in (server, client):
                c.minimum_version = c.maximum_version = v
                c.set_ciphers(suite.aiotls_name)
        return server, client


# --- one implementation's server/client plumbing ---------------------------------------------


class Impl:
    def __init__(self, name: str, contexts: Contexts, suite: Suite | None) -> None:
        self.name = name
        #: aiotls's own asyncio adapter (aiotls.asyncio)
        self.uses_aiotls = name.startswith("aiotls")
        #: aiotls contexts handed to the loop's own TLS machinery (wrap_bio: the ssl facade)
        self.facade = name.startswith("facade")
        if self.uses_aiotls or self.facade:
            self.server_ctx: Any
            self.server_ctx, self.client_ctx = contexts.aiotls(suite)
        else:
            self.server_ctx, self.client_ctx = contexts.stdlib(suite)

    def loop_factory(self) -> Callable[[], asyncio.AbstractEventLoop]:
        return uvloop.new_event_loop if "uvloop" in self.name else asyncio.new_event_loop

    async def start_server(self, factory: Callable[[], asyncio.BaseProtocol]) -> asyncio.Server:
        if self.uses_aiotls:
            return await aio.create_server(factory, "127.0.0.1", 0, ssl=self.server_ctx,
                                           backlog=2048)
        loop = asyncio.get_running_loop()
        return await loop.create_server(factory, "127.0.0.1", 0, ssl=self.server_ctx,
                                        backlog=2048)

    async def connect(self, factory: Callable[[], asyncio.BaseProtocol],
                      port: int, session: Any = None) -> tuple[asyncio.Transport, Any]:
        if self.uses_aiotls:
            return await aio.create_connection(factory, "127.0.0.1", port, ssl=self.client_ctx,
                                               server_hostname="localhost", session=session)
        loop = asyncio.get_running_loop()
        if self.facade:
            self.client_ctx._bench_session = session
        else:
            self.client_ctx.session = session
        transport, protocol = await loop.create_connection(
            factory, "127.0.0.1", port, ssl=self.client_ctx, server_hostname="localhost")
        return transport, protocol  # type: ignore[return-value]

    def run(self, coro: Callable[[], Awaitable[float]]) -> float:
        with asyncio.Runner(loop_factory=self.loop_factory()) as runner:
            return runner.run(coro())  # type: ignore[arg-type]


# --- protocols -------------------------------------------------------------------------------


class Sink(asyncio.BufferedProtocol):
    """Counts bytes; sets ``done`` when ``expect`` bytes have arrived."""

    def __init__(self) -> None:
        self.buf = bytearray(256 * 1024)
        self.count = 0
        self.expect = -1
        self.done: asyncio.Future[None] = asyncio.get_event_loop().create_future()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def get_buffer(self, sizehint: int) -> memoryview:
        return memoryview(self.buf)

    def buffer_updated(self, nbytes: int) -> None:
        self.count += nbytes
        if self.count >= self.expect > 0 and not self.done.done():
            self.done.set_result(None)
            assert self.transport is not None
            self.transport.write(b"k")  # acknowledge

    def connection_lost(self, exc: BaseException | None) -> None:
        if not self.done.done():
            self.done.set_result(None)


class Echo(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.Transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.transport.write(data)


class Client(asyncio.Protocol):
    """Writes with flow control; collects replies into a queue."""

    def __init__(self) -> None:
        self.loop = asyncio.get_event_loop()
        self.can_write = asyncio.Event()
        self.can_write.set()
        self.got = bytearray()
        self.waiter: asyncio.Future[None] | None = None
        self.want = 0
        self.closed: asyncio.Future[None] = self.loop.create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.Transport = transport  # type: ignore[assignment]

    def pause_writing(self) -> None:
        self.can_write.clear()

    def resume_writing(self) -> None:
        self.can_write.set()

    def data_received(self, data: bytes) -> None:
        self.got += data
        if self.waiter is not None and len(self.got) >= self.want and not self.waiter.done():
            self.waiter.set_result(None)

    async def read_exactly(self, n: int) -> bytes:
        while len(self.got) < n:
            self.want = n
            self.waiter = self.loop.create_future()
            await self.waiter
        out, self.got = bytes(self.got[:n]), self.got[n:]
        return out

    def connection_lost(self, exc: BaseException | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError("lost"))


# --- scenarios -------------------------------------------------------------------------------


async def bulk(impl: Impl, total: int, chunk: int = 64 * 1024) -> float:
    """MB/s moving ``total`` bytes client → server in ``chunk``-sized writes."""
    sinks: list[Sink] = []

    def sink_factory() -> Sink:
        s = Sink()
        s.expect = total
        sinks.append(s)
        return s

    server = await impl.start_server(sink_factory)
    port = server.sockets[0].getsockname()[1]
    transport, client = await impl.connect(Client, port)
    payload = os.urandom(chunk)
    await asyncio.sleep(0)
    start = time.perf_counter()
    sent = 0
    while sent < total:
        await client.can_write.wait()
        transport.write(payload)
        sent += chunk
    await client.read_exactly(1)  # the server's acknowledgement after the last byte
    elapsed = time.perf_counter() - start
    transport.close()
    await client.closed
    server.close()
    await server.wait_closed()
    assert sinks[0].count >= total
    return total / elapsed / 1e6


async def echo_rtt(impl: Impl, rounds: int) -> float:
    """Round trips per second of 64-byte messages."""
    server = await impl.start_server(Echo)
    port = server.sockets[0].getsockname()[1]
    transport, client = await impl.connect(Client, port)
    msg = os.urandom(64)
    for _ in range(20):  # warm-up
        transport.write(msg)
        await client.read_exactly(64)
    start = time.perf_counter()
    for _ in range(rounds):
        transport.write(msg)
        await client.read_exactly(64)
    elapsed = time.perf_counter() - start
    transport.close()
    await client.closed
    server.close()
    await server.wait_closed()
    return rounds / elapsed


async def handshakes(impl: Impl, count: int) -> float:
    """Full handshakes per second (connect, handshake, close), one at a time."""
    server = await impl.start_server(Echo)
    port = server.sockets[0].getsockname()[1]
    for _ in range(3):  # warm-up
        transport, client = await impl.connect(Client, port)
        transport.close()
        await client.closed
    start = time.perf_counter()
    for _ in range(count):
        transport, client = await impl.connect(Client, port)
        transport.close()
        await client.closed
    elapsed = time.perf_counter() - start
    server.close()
    await server.wait_closed()
    return count / elapsed


async def resumed_handshakes(impl: Impl, count: int) -> float:
    """Resumed handshakes per second (connect with a session, handshake, close), one at a
    time, like :func:`handshakes`: every connection resumes the first one's session."""
    server = await impl.start_server(Echo)
    port = server.sockets[0].getsockname()[1]
    transport, client = await impl.connect(Client, port)
    transport.write(b"x")
    await client.read_exactly(1)  # TLS 1.3 tickets come after the handshake
    session = transport.get_extra_info("ssl_object").session
    transport.close()
    await client.closed

    async def once() -> None:
        transport, client = await impl.connect(Client, port, session)
        assert transport.get_extra_info("ssl_object").session_reused
        transport.close()
        await client.closed

    for _ in range(3):  # warm-up
        await once()
    start = time.perf_counter()
    for _ in range(count):
        await once()
    elapsed = time.perf_counter() - start
    server.close()
    await server.wait_closed()
    return count / elapsed


# --- sans-IO handshakes: both ends in memory, no event loop -----------------------------------


def _stdlib_pair(server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext,
                 session: ssl.SSLSession | None) -> ssl.SSLObject:
    c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
    client = client_ctx.wrap_bio(c_in, c_out, server_hostname="localhost", session=session)
    server = server_ctx.wrap_bio(s_in, s_out, server_side=True)
    for _ in range(20):
        for obj in (client, server):
            with contextlib.suppress(ssl.SSLWantReadError):
                obj.do_handshake()
        moved = False
        if c_out.pending:
            s_in.write(c_out.read())
            moved = True
        if s_out.pending:
            c_in.write(s_out.read())
            moved = True
        if not moved:
            break
    # let the client read the TLS 1.3 tickets
    server.write(b"x")
    c_in.write(s_out.read())
    client.read(1)
    return client


def _aiotls_pair(server_ctx: aiotls.TLSContext, client_ctx: aiotls.TLSContext,
                 session: aiotls.TLSSession | None) -> aiotls.TLSConnection:
    client = aiotls.TLSConnection(client_ctx, server_hostname="localhost", session=session)
    server = aiotls.TLSConnection(server_ctx, server_side=True)
    for _ in range(20):
        a = client.data_to_send()
        if a:
            server.receive_data(a)
        b = server.data_to_send()
        if b:
            client.receive_data(b)
        if not a and not b:
            break
    server.send_data(b"x")
    client.receive_data(server.data_to_send())
    return client


def memory_handshakes(impl: Impl, count: int, resumed: bool) -> float:
    """Handshakes per second with both ends in memory (no sockets, no loop)."""
    if impl.uses_aiotls:
        first = _aiotls_pair(impl.server_ctx, impl.client_ctx, None)
        session: Any = first.session if resumed else None
        start = time.perf_counter()
        for _ in range(count):
            conn = _aiotls_pair(impl.server_ctx, impl.client_ctx, session)
            assert conn.session_reused == resumed
    else:
        first_s = _stdlib_pair(impl.server_ctx, impl.client_ctx, None)
        session = first_s.session if resumed else None
        start = time.perf_counter()
        for _ in range(count):
            obj = _stdlib_pair(impl.server_ctx, impl.client_ctx, session)
            assert obj.session_reused == resumed
    return count / (time.perf_counter() - start)


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


async def idle_memory(impl: Impl, count: int) -> float:
    """Bytes of RSS per idle established connection (client and server ends together)."""
    server = await impl.start_server(Echo)
    port = server.sockets[0].getsockname()[1]
    conns = []
    for _ in range(10):  # warm-up: imports, caches, first buffers
        conns.append(await impl.connect(Client, port))
    gc.collect()
    base = _rss()
    for _ in range(count):
        conns.append(await impl.connect(Client, port))
        # let the server side finish its part of the handshake
    await asyncio.sleep(0.2)
    gc.collect()
    used = _rss() - base
    for transport, _ in conns:
        transport.abort()
    await asyncio.sleep(0.1)
    server.close()
    await server.wait_closed()
    return used / count


def idle_memory_subprocess(name: str, count: int) -> float:
    """Run :func:`idle_memory` in a fresh interpreter, so memory freed by earlier scenarios
    cannot be reused and hide the cost."""
    import subprocess

    out = subprocess.run([sys.executable, __file__, "--memory-child", name, str(count)],
                         capture_output=True, text=True, timeout=600, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def _memory_child(name: str, count: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        impl = Impl(name, Contexts(tmp, "ecdsa"), None)
        print(impl.run(lambda: idle_memory(impl, count)))


# --- driver ----------------------------------------------------------------------------------


@dataclass
class Row:
    scenario: str
    unit: str
    higher_is_better: bool
    values: dict[str, float] = field(default_factory=dict)
    #: every measurement, in order (``values`` keeps the best of them)
    runs: dict[str, list[float]] = field(default_factory=dict)

    def ratio(self, a: str, b: str) -> float | None:
        if a in self.values and b in self.values and self.values[b]:
            return self.values[a] / self.values[b]
        return None

    def round_ratios(self, a: str, b: str) -> list[float]:
        """``a / b`` within each round: the two ran back to back, so slow phases of a shared
        machine hit both (a steadier figure than the ratio of the bests)."""
        return [x / y for x, y in zip(self.runs.get(a, []), self.runs.get(b, []), strict=False)
                if y]


def run_all(full: bool, only: set[str] | None, repeat: int) -> list[Row]:
    rows: list[Row] = []
    mib = 1024 * 1024
    bulk_bytes = 256 * mib if full else 32 * mib
    rounds = 20000 if full else 3000
    hs = 1000 if full else 60  # per cell: longer cells average out a shared machine's bursts
    idle = 1000 if full else 300
    with tempfile.TemporaryDirectory() as tmp:
        for sub in ("e", "r"):
            os.mkdir(os.path.join(tmp, sub))
        ecdsa = Contexts(os.path.join(tmp, "e"), "ecdsa")
        rsa = Contexts(os.path.join(tmp, "r"), "rsa")

        plans: list[tuple[str, str, bool, Contexts, Suite | None,
                          Callable[[Impl], Callable[[], Awaitable[float]]]]] = []
        for suite in SUITES.values():
            plans.append((f"bulk {suite.label}, {bulk_bytes // mib} MiB in 64 KiB writes",
                          "MB/s", True, ecdsa, suite,
                          lambda impl: (lambda: bulk(impl, bulk_bytes))))
        plans.append((f"echo round trips, 64 B, TLS 1.3 ({rounds})", "round trips/s", True,
                      ecdsa, None, lambda impl: (lambda: echo_rtt(impl, rounds))))
        plans.append((f"full handshakes TLS 1.3 X25519 ECDSA P-256 ({hs})", "handshakes/s",
                      True, ecdsa, None, lambda impl: (lambda: handshakes(impl, hs))))
        plans.append((f"full handshakes TLS 1.3 X25519 RSA-2048 ({hs})", "handshakes/s", True,
                      rsa, None, lambda impl: (lambda: handshakes(impl, hs))))
        plans.append((f"resumed handshakes TLS 1.3 PSK-DHE ({hs})", "handshakes/s", True,
                      ecdsa, None, lambda impl: (lambda: resumed_handshakes(impl, hs))))
        plans.append((f"full handshakes TLS 1.3 ECDSA P-256, in memory ({hs})", "handshakes/s",
                      True, ecdsa, None,
                      lambda impl: (lambda: _sync(memory_handshakes(impl, hs, False)))))
        plans.append((f"resumed handshakes TLS 1.3 PSK-DHE, in memory ({hs})", "handshakes/s",
                      True, ecdsa, None,
                      lambda impl: (lambda: _sync(memory_handshakes(impl, hs, True)))))
        plans.append((f"RSS per idle connection ({idle} connections, both ends)",
                      "bytes", False, ecdsa, None,
                      lambda impl: (lambda: _sync(idle_memory_subprocess(impl.name, idle)))))

        for scenario, unit, hib, contexts, suite, make in plans:
            if only and not any(word in scenario for word in only):
                continue
            row = Row(scenario, unit, hib)
            impls = {name: Impl(name, contexts, suite) for name in IMPLS}
            results: dict[str, list[float]] = {name: [] for name in IMPLS}
            # Rounds interleave the implementations, in alternating order, so that drift
            # on a shared machine (frequency, neighbours) favours none of them.
            for round_ in range(repeat):
                order = list(impls.items())
                for name, impl in order if round_ % 2 == 0 else reversed(order):
                    value = impl.run(make(impl))
                    results[name].append(value)
                    print(f"  {scenario:<62} {name:<14} {value:>12.1f} {unit}",
                          file=sys.stderr, flush=True)
            for name, values in results.items():
                row.values[name] = max(values) if hib else min(values)
                row.runs[name] = values
            rows.append(row)
    return rows


async def _sync(value: float) -> float:
    return value


def _pair_label(a: str, b: str) -> str:
    return f"{a.replace('uvloop', 'uv')}/{b.replace('uvloop', 'uv')}"


def print_table(rows: list[Row]) -> None:
    head = (f"{'scenario':<64} {'unit':<13} " + " ".join(f"{n:>13}" for n in IMPLS)
            + " " + " ".join(f"{_pair_label(a, b):>16}" for a, b in PAIRS))
    print(head)
    print("-" * len(head))
    for row in rows:
        vals = " ".join(f"{row.values.get(n, float('nan')):>13.1f}" for n in IMPLS)
        ratios = []
        for a, b in PAIRS:
            r = row.ratio(a, b)
            ratios.append(f"{(f'{r:.2f}x' if r else '-'):>16}")
        print(f"{row.scenario:<64} {row.unit:<13} {vals} " + " ".join(ratios))


def print_round_ratios(rows: list[Row]) -> None:
    if not any(len(runs) > 1 for row in rows for runs in row.runs.values()):
        return
    print("\nratios within each round (implementations ran back to back): median [min-max]")
    print(f"{'':<64} " + " ".join(f"{_pair_label(a, b):>24}" for a, b in PAIRS))
    for row in rows:
        cells = []
        for a, b in PAIRS:
            ratios = sorted(row.round_ratios(a, b))
            cells.append(f"{statistics.median(ratios):.2f}x [{ratios[0]:.2f}-{ratios[-1]:.2f}]"
                         if ratios else "-")
        print(f"{row.scenario:<64} " + " ".join(f"{c:>24}" for c in cells))


def plot(rows: list[Row], path: str) -> None:
    import matplotlib  # optional, only for --plot

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(rows), 1, figsize=(9, 2.2 * len(rows)))
    for ax, row in zip(axes if len(rows) > 1 else [axes], rows, strict=True):
        names = list(row.values)
        ax.barh(names, [row.values[n] for n in names],
                color=["#888", "#2a7", "#7c5", "#88a", "#2a7", "#7c5"][:len(names)])
        ax.set_title(row.scenario, fontsize=9)
        ax.set_xlabel(row.unit, fontsize=8)
        ax.tick_params(labelsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--full", action="store_true", help="full sizes (slow)")
    parser.add_argument("--repeat", type=int, default=1, help="runs per cell; best is kept")
    parser.add_argument("--only", nargs="*", help="run scenarios whose name contains a word")
    parser.add_argument("--json", help="write results as JSON to this file")
    parser.add_argument("--plot", help="draw the table as a PNG (needs matplotlib)")
    parser.add_argument("--memory-child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.memory_child:
        _memory_child(args.memory_child[0], int(args.memory_child[1]))
        return 0
    print(f"aiotls {aiotls.__version__} | Python {platform.python_version()} | "
          f"{ssl.OPENSSL_VERSION} | uvloop {uvloop.__version__} | {os.cpu_count()} CPUs | "
          f"{'full' if args.full else 'quick'} run", flush=True)
    rows = run_all(args.full, set(args.only) if args.only else None, args.repeat)
    print_table(rows)
    print_round_ratios(rows)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"meta": {"python": platform.python_version(), "openssl": ssl.OPENSSL_VERSION,
                                "full": args.full, "repeat": args.repeat},
                       "rows": [asdict(r) for r in rows]}, f, indent=2)
    if args.plot:
        plot(rows, args.plot)
    return 0


if __name__ == "__main__":
    sys.exit(main())
