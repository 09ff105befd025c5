"""benchmarks/bench_anyio.py keeps working: a quick real run prints a ratio on every row."""

from __future__ import annotations

import os
import re
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "benchmarks"))
import bench_anyio


def test_quick_run_prints_a_ratio_for_every_scenario_and_backend(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert bench_anyio.main(["--quick", "--repeat", "1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("scenario"))
    rows = [line for line in lines[header + 2:] if line.strip()]
    seen = set()
    for row in rows:
        match = re.match(r"(bulk|full handshakes).*?\s(asyncio|trio)\s+(MB/s|handshakes/s)\s+"
                         r"([\d.]+)\s+([\d.]+)\s+([\d.]+)x$", row)
        assert match, row
        aiotls_value, anyio_value, ratio = (float(match.group(i)) for i in (4, 5, 6))
        assert aiotls_value > 0 and anyio_value > 0
        assert ratio == pytest.approx(aiotls_value / anyio_value, rel=0.01, abs=0.01)
        seen.add((match.group(1), match.group(2)))
    assert seen == {(s, b) for s in ("bulk", "full handshakes") for b in ("asyncio", "trio")}
