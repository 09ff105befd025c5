"""aiotls.anyio's TLSStream versus anyio's own TLSStream (stdlib ``ssl``), in one run.

Usage::

    python benchmarks/bench_anyio.py                # 64 MiB bulk, 200 handshakes, 3 rounds
    python benchmarks/bench_anyio.py --quick        # small sizes (seconds)
    python benchmarks/bench_anyio.py --repeat 5

For each anyio backend (asyncio, trio) and each scenario, the two implementations run
back to back in every round, in alternating order, over loopback TCP with client and
server in the same event loop (so a figure is the CPU cost of *both* ends):

* ``aiotls``  :class:`aiotls.anyio.TLSStream` with an :class:`aiotls.TLSContext`
* ``anyio``   :class:`anyio.streams.tls.TLSStream` with an :class:`ssl.SSLContext` (OpenSSL)

Scenarios: bulk transfer (one direction, in 64 KiB sends; MB/s) and full handshakes
(TCP connect, both handshakes, close without closing handshake; handshakes/s).  Both
sides use the same ECDSA P-256 certificate and negotiate TLS 1.3 with the same cipher
suite (printed).  The figure kept is the median of the rounds; the ratio is
aiotls/anyio (above 1: aiotls is faster).

``benchmarks/bench.py`` imports this module for its ``aiotls.anyio`` rows (bulk and
:func:`echo`), on the asyncio backend (default loop and uvloop) and on trio.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import ssl
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from importlib.metadata import version
from typing import Any

import anyio
from anyio.abc import SocketAttribute
from anyio.streams.tls import TLSAttribute
from anyio.streams.tls import TLSStream as AnyioTLSStream

import aiotls
from aiotls.anyio import TLSStream
from aiotls.testing import generate_pki

IMPLS = ("aiotls", "anyio")
BACKENDS = ("asyncio", "trio")
CHUNK = 64 * 1024
MiB = 1024 * 1024


class Impl:
    """One implementation: its contexts and its wrap().

    ``aiotls_stream`` picks :class:`aiotls.anyio.TLSStream`; otherwise anyio's own
    :class:`anyio.streams.tls.TLSStream` wraps the connection through the context's
    ``wrap_bio()`` (an :class:`ssl.SSLContext`, or an :class:`aiotls.TLSContext`: the
    ``ssl`` facade).  ``benchmarks/bench.py`` builds these from its own contexts.
    """

    def __init__(self, name: str, server_ctx: Any, client_ctx: Any, *,
                 aiotls_stream: bool) -> None:
        self.name = name
        self.server_ctx = server_ctx
        self.client_ctx = client_ctx
        self.aiotls_stream = aiotls_stream
        self.cipher = ""

    @classmethod
    def from_files(cls, name: str, ca: str, cert: str, key: str) -> Impl:
        """``aiotls``: aiotls.anyio with aiotls contexts; ``anyio``: anyio's with ``ssl``'s."""
        server_ctx: Any
        client_ctx: Any
        if name == "aiotls":
            server_ctx = aiotls.TLSContext(ssl.PROTOCOL_TLS_SERVER)
            client_ctx = aiotls.TLSContext(ssl.PROTOCOL_TLS_CLIENT)
        else:
            server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            client_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        server_ctx.load_cert_chain(cert, key)
        client_ctx.load_verify_locations(ca)
        return cls(name, server_ctx, client_ctx, aiotls_stream=name == "aiotls")

    async def wrap(self, stream: Any, server_side: bool, standard_compatible: bool = True) -> Any:
        cls: Any = TLSStream if self.aiotls_stream else AnyioTLSStream
        if server_side:
            return await cls.wrap(stream, server_side=True, ssl_context=self.server_ctx,
                                  standard_compatible=standard_compatible)
        return await cls.wrap(stream, hostname="localhost", ssl_context=self.client_ctx,
                              standard_compatible=standard_compatible)

    async def pair(self, listener: Any, port: int,
                   standard_compatible: bool = True) -> tuple[Any, Any]:
        """A connected (client, server) pair of TLS streams over loopback TCP."""
        raw_client = await anyio.connect_tcp("127.0.0.1", port)
        raw_server = await listener.accept()
        streams: dict[str, Any] = {}

        async def server() -> None:
            streams["server"] = await self.wrap(raw_server, True, standard_compatible)

        async with anyio.create_task_group() as tg:
            tg.start_soon(server)
            streams["client"] = await self.wrap(raw_client, False, standard_compatible)
        self.cipher = streams["client"].extra(TLSAttribute.cipher)[0]
        return streams["client"], streams["server"]


# --- scenarios (each returns its figure) -----------------------------------------------------


async def bulk(impl: Impl, total: int) -> float:
    """MB/s moving ``total`` bytes client -> server in 64 KiB sends, until the server
    has received the last byte and acknowledged it."""
    payload = os.urandom(CHUNK)
    async with await anyio.create_tcp_listener(local_host="127.0.0.1") as multi:
        listener = multi.listeners[0]
        client, server = await impl.pair(listener, listener.extra(SocketAttribute.local_port))

        async def sink() -> None:
            got = 0
            while got < total:
                got += len(await server.receive())
            await server.send(b"k")

        started = time.perf_counter()
        async with anyio.create_task_group() as tg:
            tg.start_soon(sink)
            for _ in range(total // CHUNK):
                await client.send(payload)
            assert await client.receive() == b"k"
        elapsed = time.perf_counter() - started
        for stream in (client, server):
            await anyio.aclose_forcefully(stream)
    return total / elapsed / 1e6


async def echo(impl: Impl, rounds: int, size: int = 64) -> float:
    """Round trips per second of ``size``-byte messages: the client sends one and reads until
    the server has sent it back (after 20 unmeasured round trips)."""
    msg = os.urandom(size)
    async with await anyio.create_tcp_listener(local_host="127.0.0.1") as multi:
        listener = multi.listeners[0]
        client, server = await impl.pair(listener, listener.extra(SocketAttribute.local_port))

        async def serve() -> None:
            with contextlib.suppress(anyio.EndOfStream):
                while True:
                    await server.send(await server.receive())

        async def round_trip() -> None:
            await client.send(msg)
            got = 0
            while got < size:
                got += len(await client.receive())
            assert got == size

        async with anyio.create_task_group() as tg:
            tg.start_soon(serve)
            for _ in range(20):  # warm-up
                await round_trip()
            started = time.perf_counter()
            for _ in range(rounds):
                await round_trip()
            elapsed = time.perf_counter() - started
            tg.cancel_scope.cancel()
        for stream in (client, server):
            await anyio.aclose_forcefully(stream)
    return rounds / elapsed


async def handshakes(impl: Impl, count: int) -> float:
    """Full handshakes per second (TCP connect, both handshakes, close)."""
    async with await anyio.create_tcp_listener(local_host="127.0.0.1", backlog=1024) as multi:
        listener = multi.listeners[0]
        port = listener.extra(SocketAttribute.local_port)
        for _ in range(3):  # warm-up
            for stream in await impl.pair(listener, port, standard_compatible=False):
                await stream.aclose()
        started = time.perf_counter()
        for _ in range(count):
            for stream in await impl.pair(listener, port, standard_compatible=False):
                await stream.aclose()
        elapsed = time.perf_counter() - started
    return count / elapsed


# --- running and reporting -------------------------------------------------------------------


@dataclass
class Row:
    scenario: str
    backend: str
    unit: str
    runs: dict[str, list[float]] = field(default_factory=lambda: {n: [] for n in IMPLS})

    def median(self, name: str) -> float:
        return statistics.median(self.runs[name])

    def ratio(self) -> float:
        return self.median("aiotls") / self.median("anyio")


def run_all(quick: bool, repeat: int) -> list[Row]:
    total = 4 * MiB if quick else 64 * MiB
    count = 10 if quick else 200
    plans: list[tuple[str, str, Callable[[Impl], Awaitable[float]]]] = [
        (f"bulk, {total // MiB} MiB in 64 KiB sends", "MB/s", lambda impl: bulk(impl, total)),
        (f"full handshakes TLS 1.3 ECDSA P-256 ({count})", "handshakes/s",
         lambda impl: handshakes(impl, count)),
    ]
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as tmp:
        pki = generate_pki(tmp, key_type="ecdsa")
        impls = {name: Impl.from_files(name, pki.ca_file, pki.cert_file, pki.key_file)
                 for name in IMPLS}
        for scenario, unit, make in plans:
            for backend in BACKENDS:
                row = Row(scenario, backend, unit)
                for round_ in range(repeat):
                    order = list(impls.values())
                    for impl in order if round_ % 2 == 0 else reversed(order):
                        value = anyio.run(make, impl, backend=backend)
                        row.runs[impl.name].append(value)
                        print(f"  {scenario:<44} {backend:<8} {impl.name:<7} {value:>10.1f} {unit}"
                              f"  ({impl.cipher or '-'})", file=sys.stderr, flush=True)
                rows.append(row)
    return rows


def print_table(rows: list[Row]) -> None:
    head = (f"{'scenario':<44} {'backend':<8} {'unit':<13} {'aiotls':>10} {'anyio':>10} "
            f"{'aiotls/anyio':>13}")
    print(head)
    print("-" * len(head))
    for row in rows:
        print(f"{row.scenario:<44} {row.backend:<8} {row.unit:<13} {row.median('aiotls'):>10.1f} "
              f"{row.median('anyio'):>10.1f} {row.ratio():>12.2f}x")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes (a few seconds)")
    parser.add_argument("--repeat", type=int, default=3,
                        help="rounds; the median is kept (default: %(default)s)")
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    print(f"aiotls {aiotls.__version__} | anyio {version('anyio')} | trio {version('trio')} | "
          f"Python {platform.python_version()} | {ssl.OPENSSL_VERSION} | {os.cpu_count()} CPUs | "
          f"{'quick' if args.quick else 'full'} run, median of {args.repeat}", flush=True)
    print_table(run_all(args.quick, args.repeat))
    return 0


if __name__ == "__main__":
    sys.exit(main())
