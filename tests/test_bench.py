"""The benchmark script keeps working: its ratio arithmetic, and a short real run."""

from __future__ import annotations

import json
import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "benchmarks"))
import bench


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
