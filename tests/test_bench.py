"""The benchmark script keeps working: its ratio arithmetic, and a short real run."""

from __future__ import annotations

import asyncio
import json
import os
import ssl
import sys
from typing import Any

import anyio
import pytest
import sniffio
import uvloop
from anyio.abc import SocketAttribute
from anyio.streams.tls import TLSAttribute
from anyio.streams.tls import TLSStream as AnyioTLSStream

import aiotls
import aiotls.anyio
from aiotls.compat import TLSObject

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "benchmarks"))
import bench
import bench_anyio


def test_round_ratios_pair_the_runs_of_each_round(capsys: pytest.CaptureFixture[str]) -> None:
    row = bench.Row("bulk x", "MB/s", True,
                    runs={"stdlib": [100.0, 50.0, 200.0], "aiotls": [110.0, 40.0, 180.0],
                          "uvloop": [100.0, 100.0, 100.0], "aiotls+uvloop": [90.0, 95.0, 85.0]})
    row.values = {name: max(values) for name, values in row.runs.items()}
    assert row.round_ratios("aiotls", "stdlib") == pytest.approx([1.1, 0.8, 0.9])
    assert row.ratio("aiotls", "stdlib") == pytest.approx(180 / 200)  # the bests
    bench.print_round_ratios([row])
    out = capsys.readouterr().out
    assert "0.90x [0.80-1.10]" in out  # median [min-max] of the paired ratios
    assert "0.90x [0.85-0.95]" in out


def test_short_run_writes_every_measurement(tmp_path: os.PathLike[str],
                                            capsys: pytest.CaptureFixture[str]) -> None:
    out_file = os.path.join(tmp_path, "r.json")
    assert bench.main(["--only", "resumed", "--repeat", "2", "--json", out_file]) == 0
    printed = capsys.readouterr().out
    assert "resumed handshakes" in printed and "ratios within each round" in printed
    with open(out_file) as f:
        result = json.load(f)
    rows = {row["scenario"].split(" (")[0]: row for row in result["rows"]}
    # over loopback through each event loop (every connection asserts it resumed), and
    # both ends in memory
    assert set(rows) == {"resumed handshakes TLS 1.3 PSK-DHE",
                         "resumed handshakes TLS 1.3 PSK-DHE, in memory"}
    for row in rows.values():
        assert set(row["runs"]) == set(bench.IMPLS)
        assert all(len(values) == 2 and min(values) > 0 for values in row["runs"].values())


@pytest.mark.parametrize("impl_name", bench.IMPLS)
def test_resumed_scenario_resumes_on_every_implementation(
        tmp_path: os.PathLike[str], impl_name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """asyncio's and uvloop's create_connection take no session: the stdlib columns resume
    through ResumingContext.wrap_bio, and each connection after the first must resume."""
    impl = bench.Impl(impl_name, bench.Contexts(str(tmp_path), "ecdsa"), None)
    reused: list[bool] = []
    connect = impl.connect

    async def recording(factory: object, port: int, session: object = None) -> object:
        transport, protocol = await connect(factory, port, session)  # type: ignore[arg-type]
        reused.append(transport.get_extra_info("ssl_object").session_reused)
        return transport, protocol

    monkeypatch.setattr(impl, "connect", recording)
    assert impl.run(lambda: bench.resumed_handshakes(impl, 4)) > 0
    assert reused == [False] + [True] * 7  # the first connection, 3 warm-ups, 4 measured


# --- the rows per API, the aiotls.anyio rows and the concurrent row --------------------------

AES = "TLS_AES_128_GCM_SHA256"


@pytest.fixture(scope="module")
def contexts(tmp_path_factory: pytest.TempPathFactory) -> bench.Contexts:
    return bench.Contexts(str(tmp_path_factory.mktemp("bench")), "ecdsa")


def _expect_tls_object(impl_name: str, obj: object) -> None:
    """The column runs what its name says: aiotls's adapter (a TLSConnection), the loop's own
    TLS over the ssl facade (aiotls.compat.TLSObject), or the loop's own TLS over OpenSSL."""
    if impl_name.startswith("aiotls"):
        assert isinstance(obj, aiotls.TLSConnection)
    elif impl_name.startswith("facade"):
        assert isinstance(obj, TLSObject)
    else:
        assert type(obj) is ssl.SSLObject


@pytest.mark.parametrize("impl_name", bench.IMPLS)
def test_streams_and_protocol_rows_run_each_column_for_real(contexts: bench.Contexts,
                                                            impl_name: str) -> None:
    impl = bench.Impl(impl_name, contexts, bench.SUITES["tls13-aes128gcm"])
    seen: dict[str, object] = {}

    async def streams_identity() -> float:
        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.write(await reader.readexactly(3))
            await writer.drain()
            writer.close()

        server = await impl.start_streams_server(handler)
        reader, writer = await impl.open_connection(server.sockets[0].getsockname()[1])
        seen["loop"] = asyncio.get_running_loop()
        seen["ssl_object"] = writer.get_extra_info("ssl_object")
        seen["cipher"] = writer.get_extra_info("cipher")[0]
        writer.write(b"abc")
        seen["echo"] = await reader.readexactly(3)
        writer.close()
        server.close()
        return 1.0

    async def bounded(coro: Any) -> float:
        async with asyncio.timeout(60):
            return float(await coro)

    impl.run(lambda: bounded(streams_identity()))
    _expect_tls_object(impl_name, seen["ssl_object"])
    assert isinstance(seen["loop"], uvloop.Loop) == ("uvloop" in impl_name)
    assert seen["cipher"] == AES and seen["echo"] == b"abc"
    # the scenarios check the byte counts themselves (Streams: the handler's total)
    assert impl.run(lambda: bounded(bench.bulk_streams(impl, 1024 * 1024))) > 0
    assert impl.run(lambda: bounded(bench.bulk(impl, 1024 * 1024, bench.ProtocolSink))) > 0
    assert impl.run(lambda: bounded(bench.echo_streams(impl, 20))) > 0


@pytest.mark.parametrize(("backend", "impl_name"),
                         [("asyncio", name) for name in bench.IMPLS]
                         + [("trio", name) for name in bench.TRIO_IMPLS])
def test_anyio_rows_run_each_column_on_its_backend(contexts: bench.Contexts, backend: str,
                                                   impl_name: str) -> None:
    """aiotls columns: aiotls.anyio's TLSStream; the others anyio's own TLSStream with the
    column's context (OpenSSL, or an aiotls context: the facade); uvloop where named."""
    impl = bench.Impl(impl_name, contexts, bench.SUITES["tls13-aes128gcm"])
    seen: dict[str, object] = {}

    async def identity(streams: bench_anyio.Impl) -> float:
        with anyio.fail_after(60):
            async with await anyio.create_tcp_listener(local_host="127.0.0.1") as multi:
                listener = multi.listeners[0]
                client, server = await streams.pair(listener,
                                                    listener.extra(SocketAttribute.local_port))
                seen["stream"] = client
                seen["cipher"] = client.extra(TLSAttribute.cipher)[0]
                seen["ssl_object"] = client.extra(TLSAttribute.ssl_object)
                seen["backend"] = sniffio.current_async_library()
                if seen["backend"] == "asyncio":
                    seen["uvloop"] = isinstance(asyncio.get_running_loop(), uvloop.Loop)
                for stream in (client, server):
                    await anyio.aclose_forcefully(stream)
            figures = [await bench_anyio.echo(streams, 20),
                       await bench_anyio.bulk(streams, 1024 * 1024)]
        return min(figures)

    assert impl.run_anyio(backend, identity) > 0
    stream_type = aiotls.anyio.TLSStream if impl_name.startswith("aiotls") else AnyioTLSStream
    assert type(seen["stream"]) is stream_type
    assert seen["cipher"] == AES
    if not impl_name.startswith("aiotls"):
        _expect_tls_object(impl_name, seen["ssl_object"])
    assert seen["backend"] == backend
    if backend == "asyncio":
        assert seen["uvloop"] == ("uvloop" in impl_name)


@pytest.mark.parametrize("impl_name", ["stdlib", "aiotls", "aiotls+uvloop"])
def test_concurrent_echo_spreads_connections_so_no_listen_queue_fills(
        contexts: bench.Contexts, impl_name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """With a (pretend) somaxconn of 16, 40 simultaneous connections go to 5 listeners of at
    most 8 each; every handshake and echo succeeds."""
    monkeypatch.setattr(bench, "_somaxconn", lambda: 16)
    impl = bench.Impl(impl_name, contexts, bench.SUITES["tls13-aes128gcm"])
    result: dict[str, float] = {}

    async def measure() -> float:
        result.update(await bench.concurrent_echo(impl, 40, timeout=60))
        return result["wall"]

    assert impl.run(measure) > 0
    assert result["listeners"] == 5 and result["failures"] == 0


def test_concurrent_echo_counts_failed_connections(contexts: bench.Contexts,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """A connection that fails is counted, not raised: the others still finish."""
    impl = bench.Impl("aiotls", contexts, bench.SUITES["tls13-aes128gcm"])
    calls = 0
    open_connection = impl.open_connection

    async def every_third_fails(port: int | None = None) -> Any:
        nonlocal calls
        calls += 1
        if calls % 3 == 0:
            raise ConnectionRefusedError("refused by the test")
        return await open_connection(port)

    monkeypatch.setattr(impl, "open_connection", every_third_fails)
    result: dict[str, float] = {}

    async def measure() -> float:
        result.update(await bench.concurrent_echo(impl, 12, timeout=60))
        return result["wall"]

    impl.run(measure)
    assert result["failures"] == 4


def test_concurrent_row_runs_in_a_fresh_interpreter() -> None:
    result = bench.concurrent_subprocess("aiotls", 20)
    assert result["failures"] == 0 and result["listeners"] == 1 and result["wall"] > 0
    # peak RSS of that interpreter, in MiB (Python with aiotls, uvloop and anyio loaded)
    assert 10 < result["rss_mib"] < 4096


def test_only_selects_each_new_row(contexts: bench.Contexts) -> None:
    plans = bench.build_plans(False, contexts, contexts)

    def names(word: str) -> list[str]:
        return [spec.scenario for plan in bench.selected(plans, {word}) for spec in plan.rows]

    assert names("Streams") == ["bulk TLS 1.3 AES-128-GCM, 32 MiB: Streams",
                                "echo 64 B, TLS 1.3 (3000): Streams"]
    assert [name.split(", 32 MiB: ")[1] for name in names("AES-128-GCM, 32 MiB")
            if "anyio" not in name] == ["BufferedProtocol", "Protocol", "Streams"]
    assert names("concurrent") == [f"concurrent: 500 handshakes + 1 KiB echo: {what}"
                                   for what in ("wall time", "peak RSS", "failures")]
    anyio_plans = bench.selected(plans, {"aiotls.anyio vs anyio TLSStream"})
    assert [(plan.rows[0].scenario.split()[0], plan.impls) for plan in anyio_plans] == [
        ("bulk", bench.IMPLS), ("echo", bench.IMPLS),
        ("bulk", bench.TRIO_IMPLS), ("echo", bench.TRIO_IMPLS)]
    (concurrent,) = bench.selected(plans, {"concurrent"})
    assert [(spec.unit, spec.higher_is_better, spec.count) for spec in concurrent.rows] == [
        ("s", False, False), ("MiB", False, False), ("failures", False, True)]
    assert bench.selected(plans, None) == plans
    full = bench.build_plans(True, contexts, contexts)
    assert bench.selected(full, {"concurrent: 5000 handshakes"})


def test_table_ratios_lower_is_better_missing_cells_and_failures(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    wall = bench.Row("concurrent: wall time", "s", False,
                     values={"stdlib": 10.0, "aiotls": 8.0, "uvloop": 4.0, "aiotls+uvloop": 6.0})
    trio = bench.Row("echo (trio)", "round trips/s", True,
                     values={"stdlib": 100.0, "aiotls": 150.0, "facade": 50.0})
    failures = bench.Row("concurrent: failures", "failures", False, count=True,
                         values={"stdlib": 0.0, "aiotls": 2.0}, runs={"stdlib": [0.0],
                                                                      "aiotls": [2.0]})
    assert wall.ratio("aiotls", "stdlib") == pytest.approx(0.8)  # below 1: aiotls is faster
    assert failures.ratio("aiotls", "stdlib") is None and failures.round_ratios(
        "aiotls", "stdlib") == []
    monkeypatch.setattr(bench, "run_all", lambda full, only, repeat: [wall, trio, failures])
    assert bench.main([]) == 1  # a run with failures is not a valid result
    out = capsys.readouterr().out
    lines = {line.split("  ")[0]: line.split() for line in out.splitlines()}
    assert lines["concurrent: wall time"][-12:] == ["s", "low", "10.0", "8.00", "-", "4.00",
                                                    "6.00", "-", "0.80x", "1.50x", "-", "-"]
    assert lines["echo (trio)"][-10:] == ["100.0", "150.0", "50.0", "-", "-", "-",
                                          "1.50x", "-", "0.50x", "-"]
    assert lines["concurrent: failures"][-10:] == ["0", "2", "-", "-", "-", "-",
                                                   "-", "-", "-", "-"]
    assert "FAILURES" in out and "[aiotls]" in out


def test_gc_timer_counts_the_collections_inside_it() -> None:
    import gc

    with bench._gc_timer() as spent:
        gc.collect()
        gc.collect()
    gc.collect()  # outside: not counted
    assert spent["gc_collections"] == 2 and spent["gc_s"] > 0


def test_hybrid_cost_row_is_the_time_ratio_of_the_two_rows_before() -> None:
    """The X25519MLKEM768 cost row: time per handshake with it over time with X25519, from
    each column's best rate, and within each round; no stdlib cell (no ML-KEM there)."""
    x = bench.Row("full handshakes (60): X25519", "handshakes/s", True,
                  values={"aiotls": 600.0}, runs={"aiotls": [600.0, 500.0]})
    h = bench.Row("full handshakes (60): X25519MLKEM768", "handshakes/s", True,
                  values={"aiotls": 480.0}, runs={"aiotls": [480.0, 450.0]})
    rows = bench.with_hybrid_cost([x, h])
    assert [r.scenario for r in rows][:2] == [x.scenario, h.scenario] and len(rows) == 3
    cost = rows[2]
    assert cost.scenario.endswith("X25519MLKEM768 cost, time vs X25519")
    assert not cost.higher_is_better and cost.unit == "x"
    assert cost.values == {"aiotls": pytest.approx(1.25)}
    assert cost.runs["aiotls"] == pytest.approx([1.25, 500 / 450])
    assert "stdlib" not in cost.values
