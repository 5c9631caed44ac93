"""The bench report's ratios (bench/report.py): against the medians, and within each repetition."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
import report

SERVERS = ["portal", "product"]


def _run(server: str, rep: int, deliveries: float, cpu_pct: float = 90.0) -> dict[str, Any]:
    metrics = {"deliveries_per_s": deliveries, "server_cpu_pct": cpu_pct}
    return {"server": server, "case": "broadcast-100", "rep": rep, "metrics": metrics}


RUNS = [
    _run("portal", 1, 100.0),
    _run("product", 1, 60.0),
    _run("portal", 2, 120.0),
    _run("product", 2, 100.0),
    _run("portal", 3, 200.0),
    _run("product", 3, 90.0),
]


def test_paired_ratios_are_taken_within_each_repetition() -> None:
    paired = report.paired_ratios(RUNS, SERVERS)["broadcast-100"]["product/portal"]
    # 60/100, 100/120, 90/200: the median is 0.6, where the ratio of the medians is 90/120
    assert paired["deliveries_per_s"] == {
        "median": pytest.approx(0.6),
        "min": pytest.approx(0.45),
        "max": pytest.approx(100 / 120),
        "n": 3,
    }
    medians = report.ratios(report.medians(RUNS), SERVERS)["broadcast-100"]["product/portal"]
    assert medians["deliveries_per_s"] == pytest.approx(0.75)


def test_a_repetition_missing_one_side_and_descriptive_rows_are_left_out() -> None:
    failed = {"server": "product", "case": "broadcast-100", "rep": 4, "error": "boom"}
    runs = [*RUNS, _run("portal", 4, 1.0), failed]
    paired = report.paired_ratios(runs, SERVERS)["broadcast-100"]["product/portal"]
    assert paired["deliveries_per_s"]["n"] == 3
    assert "server_cpu_pct" not in paired


def test_the_report_shows_the_paired_table_when_there_are_repetitions() -> None:
    profile = {"reps": 3, "sustained_deliveries_per_s": 2000}
    doc = report.build(
        runs=RUNS,
        servers=SERVERS,
        cases=["broadcast-100"],
        labels={},
        profile=profile,
        command="bench/run",
        elapsed_s=1.0,
        node_dir=Path("/nonexistent"),
    )
    assert "| broadcast N=100 | deliveries/s ↑ | 0.60× (0.45–0.83) |" in doc["markdown"]
    assert doc["paired_ratios"]["broadcast-100"]["product/portal"]["deliveries_per_s"]["n"] == 3
