"""``benchmarks/coordinator.py --sections scaling`` with tiny numbers: it runs, drains with
one and two coordinator processes, checks its own keys and says where the curve stands
(structure only; the figures are for docs/benchmarks.md, never asserted)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import REPO


@pytest.mark.redis
def test_scaling_section_drains_with_each_process_count_and_reads_the_curve():
    command = [
        sys.executable, str(REPO / "benchmarks" / "coordinator.py"), "--sections", "scaling",
        "--processes", "1,2", "--scaling-shapes", "1", "--events", "200", "--resident", "1000",
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stdout + result.stderr
    rows = [
        parts[0]
        for parts in map(str.split, result.stdout.splitlines())
        if len(parts) > 1 and parts[0].isdigit() and parts[1] != "keys/event:"
    ]
    assert rows == ["1", "2"], result.stdout
    assert "flatten" in result.stdout


@pytest.mark.redis
def test_throughput_section_drains_each_shape_with_the_coordinator_and_the_bare_loop():
    # each shape's row: keys/event, plain, coordinator, ratio, events/s, bare, ratio, server CPU
    command = [
        sys.executable, str(REPO / "benchmarks" / "coordinator.py"), "--sections", "throughput",
        "--shapes", "1,5", "--events", "300", "--resident", "1000",
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stdout + result.stderr
    rows = [
        parts
        for parts in map(str.split, result.stdout.splitlines())
        if len(parts) > 7 and parts[0].isdigit()
    ]
    assert [r[0] for r in rows] == ["1", "5"], result.stdout
    for row in rows:
        assert row[3].endswith("%") and row[6].endswith("%"), row
        assert float(row[5].replace(",", "")) > 0, row
    assert "bare:" in result.stdout
