"""The bench driver's delivery accounting (bench/driver.py): a broadcast run whose deliveries do not
add up after a drain is refused, since its latency phase measured a backlog, not the server."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
import driver


def _result(saturation_owed: int, latency_owed: int) -> dict[str, Any]:
    return {
        "saturation": {
            "deliveries_per_s": 1000.0,
            "deliveries": 4000,
            "undelivered_after_drain": saturation_owed,
        },
        "latency": {"p50_ms": 1.0, "p99_ms": 2.0, "broadcasts": 40, "undelivered_after_drain": latency_owed},
        "connect": {"per_s": 100.0},
    }


MARKS = {
    "sat_start": driver.Mark("sat_start", 0.0, 0.0, 0, 0.0, 0.0, server_wait_s=10.0),
    "sat_end": driver.Mark("sat_end", 4.0, 2.0, 0, 1.0, 3.5, server_wait_s=11.0),
    "lat_start": driver.Mark("lat_start", 5.0, 2.5, 0, 1.2, 4.0),
    "lat_end": driver.Mark("lat_end", 10.0, 2.52, 0, 1.3, 5.0),
}


def test_a_run_whose_deliveries_add_up_gives_its_metrics() -> None:
    metrics = driver.metrics(driver.Case("broadcast", 100), _result(0, 0), MARKS)
    assert metrics["p99_ms"] == 2.0
    assert metrics["cpu_ms_per_1000"] == pytest.approx(500.0)
    # 20 ms of server CPU between the latency phase's marks, over its 40 publications
    assert metrics["paced_cpu_us_per_broadcast"] == pytest.approx(500.0)
    # 1 s of the 4 between the saturation marks runnable and not running
    assert metrics["server_wait_pct"] == pytest.approx(25.0)


def test_the_run_queue_wait_of_a_busy_process_grows() -> None:
    import os
    import threading

    wait = driver.run_queue_wait_s(os.getpid())
    # Two spinning threads per core keep every core's run queue long for a moment, so the main
    # thread, spinning too, waits for a core some of that time.
    stop = threading.Event()

    def spin() -> None:
        while not stop.is_set():
            pass

    spinners = [threading.Thread(target=spin) for _ in range(2 * (os.cpu_count() or 1))]
    for t in spinners:
        t.start()
    try:
        deadline = time.monotonic() + 5.0
        while driver.run_queue_wait_s(os.getpid()) <= wait and time.monotonic() < deadline:
            sum(range(10000))
    finally:
        stop.set()
        for t in spinners:
            t.join()
    assert driver.run_queue_wait_s(os.getpid()) > wait


@pytest.mark.parametrize(
    ("saturation_owed", "latency_owed"),
    [(-10313, -10313), (0, -50), (12, 12), (0, 3)],
    ids=["miscounted", "miscounted-in-latency", "lost", "lost-in-latency"],
)
def test_a_run_whose_deliveries_do_not_add_up_is_refused(saturation_owed: int, latency_owed: int) -> None:
    with pytest.raises(RuntimeError, match="do not add up"):
        driver.metrics(driver.Case("broadcast", 100), _result(saturation_owed, latency_owed), MARKS)
