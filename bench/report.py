"""Medians, ratios against Node, the Markdown table, the JSON document and the chart."""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

# (metric, label, True when higher is better) per workload, in table order.
METRICS: dict[str, list[tuple[str, str, bool]]] = {
    "broadcast": [
        ("deliveries_per_s", "deliveries/s", True),
        ("p50_ms", "p50 ms @ sustained", False),
        ("p99_ms", "p99 ms @ sustained", False),
        ("cpu_ms_per_1000", "server CPU ms / 1000 deliveries", False),
        ("paced_cpu_us_per_broadcast", "server CPU µs / publication @ sustained", False),
        ("server_cpu_pct", "server CPU % at saturation", True),
        ("server_wait_pct", "server waiting for a core % at saturation", False),
        ("loadgen_cpu_pct", "load generator CPU % at saturation", False),
        ("redis_cpu_pct", "Redis CPU % at saturation", False),
        ("node1_cpu_pct", "node 1 (publisher's) CPU % at saturation", False),
        ("node2_cpu_pct", "node 2 CPU % at saturation", False),
        ("other_cpu_pct", "other processes' CPU % at saturation", False),
    ],
    "ack": [
        ("acks_per_s", "acks/s", True),
        ("p50_ms", "p50 ms", False),
        ("p99_ms", "p99 ms", False),
        ("cpu_us_per_ack", "server CPU µs / ack", False),
        ("server_cpu_pct", "server CPU %", True),
        ("server_wait_pct", "server waiting for a core %", False),
        ("loadgen_cpu_pct", "load generator CPU %", False),
        ("other_cpu_pct", "other processes' CPU %", False),
    ],
    "idle": [
        ("rss_per_conn_kb", "RSS KB / connection", False),
        ("setup_per_s", "connections set up / s", True),
        ("setup_cpu_us", "server CPU µs / connection set up", False),
        ("setup_cpu_pct", "server CPU % during set-up", True),
        ("setup_wait_pct", "server waiting for a core % during set-up", False),
        ("other_cpu_pct", "other processes' CPU %", False),
        ("teardown_per_s", "disconnects handled / s (all drop at once)", True),
        ("teardown_cpu_us", "server CPU µs / disconnect", False),
    ],
}
# Rows that only describe the run; no ratio is shown for them.
INFORMATIONAL = {
    "server_cpu_pct",
    "server_wait_pct",
    "setup_cpu_pct",
    "setup_wait_pct",
    "loadgen_cpu_pct",
    "other_cpu_pct",
    "redis_cpu_pct",
    "node1_cpu_pct",
    "node2_cpu_pct",
}
# Rows only the cluster kinds have: left out of a table without them.
OPTIONAL = {"redis_cpu_pct", "node1_cpu_pct", "node2_cpu_pct", "server_wait_pct", "setup_wait_pct"}
# Pairs compared in their own column when both are run, besides server / node: the product path
# against the bare path (issue 8: within 1.3x), and two nodes against one (issue 8: >= 1.6x).
PAIRS: list[tuple[str, str]] = [
    ("product", "portal"),
    ("product-cluster2", "product-cluster1"),
    ("product-cluster2", "product"),
    ("product-cluster1", "product"),
]


def medians(runs: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, float]]]:
    """{case: {server: {metric: median over the repetitions}}}."""
    grouped: dict[str, dict[str, dict[str, list[float]]]] = {}
    for run in runs:
        if "metrics" not in run:
            continue
        per_metric = grouped.setdefault(run["case"], {}).setdefault(run["server"], {})
        for metric, value in run["metrics"].items():
            per_metric.setdefault(metric, []).append(value)
    return {
        case: {
            server: {m: statistics.median(vs) for m, vs in values.items()}
            for server, values in by_server.items()
        }
        for case, by_server in grouped.items()
    }


def fmt(value: float | None) -> str:
    if value is None:
        return "—"
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def pairs(servers: list[str]) -> list[tuple[str, str]]:
    """The ratio columns: every server / node when node is run, then the PAIRS that were run."""
    by_node = [(s, "node") for s in servers if s != "node"] if "node" in servers else []
    return by_node + [(a, b) for a, b in PAIRS if a in servers and b in servers]


def ratio(value: float | None, base: float | None) -> float | None:
    return value / base if value is not None and base else None


def ratios(
    med: dict[str, dict[str, dict[str, float]]], servers: list[str]
) -> dict[str, dict[str, dict[str, float]]]:
    """{case: {"a/b": {metric: median of a / median of b}}} for the ratio columns (not INFORMATIONAL)."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    for case, by_server in med.items():
        for a, b in pairs(servers):
            values = {
                metric: r
                for metric, value in by_server.get(a, {}).items()
                if metric not in INFORMATIONAL
                and (r := ratio(value, by_server.get(b, {}).get(metric))) is not None
            }
            if values:
                out.setdefault(case, {})[f"{a}/{b}"] = values
    return out


def paired_ratios(
    runs: list[dict[str, Any]], servers: list[str]
) -> dict[str, dict[str, dict[str, dict[str, float]]]]:
    """{case: {"a/b": {metric: {"median", "min", "max", "n"}}}}: the ratio of a's run to b's run of
    the same repetition, over the repetitions where both ran.

    A repetition runs every server of a case back to back, so a slow spell of the machine (a whole
    repetition slower for every server, as in session 14's fourth) moves both runs of a pair; the
    ratio of the medians lets one server's slow run and the other's fast one meet."""
    by_rep: dict[tuple[str, int], dict[str, dict[str, float]]] = {}
    for run in runs:
        if "metrics" in run and "rep" in run:
            by_rep.setdefault((run["case"], run["rep"]), {})[run["server"]] = run["metrics"]
    collected: dict[str, dict[str, dict[str, list[float]]]] = {}
    for (case, _), by_server in sorted(by_rep.items()):
        for a, b in pairs(servers):
            if a not in by_server or b not in by_server:
                continue
            for metric, value in by_server[a].items():
                if metric in INFORMATIONAL:
                    continue
                r = ratio(value, by_server[b].get(metric))
                if r is not None:
                    collected.setdefault(case, {}).setdefault(f"{a}/{b}", {}).setdefault(metric, []).append(r)
    return {
        case: {
            pair: {
                metric: {"median": statistics.median(rs), "min": min(rs), "max": max(rs), "n": len(rs)}
                for metric, rs in by_metric.items()
            }
            for pair, by_metric in by_pair.items()
        }
        for case, by_pair in collected.items()
    }


def paired_markdown(
    paired: dict[str, dict[str, dict[str, dict[str, float]]]], servers: list[str], cases: list[str]
) -> str:
    """The paired ratios as a table: median (lowest-highest) per case, metric and pair."""
    columns = [f"{a}/{b}" for a, b in pairs(servers)]
    if not columns:
        return ""
    lines = [
        "Ratios within a repetition (each repetition's pair of runs, median and range over the repetitions):",
        "",
        "| case | metric | " + " | ".join(columns) + " |",
        "|---|---|" + "---:|" * len(columns),
    ]
    for case in cases:
        workload, n = case.rsplit("-", 1)
        for metric, label, higher in METRICS[workload]:
            if metric in INFORMATIONAL:
                continue
            cells = []
            for column in columns:
                r = paired.get(case, {}).get(column, {}).get(metric)
                cells.append("" if r is None else f"{r['median']:.2f}× ({r['min']:.2f}–{r['max']:.2f})")
            if any(cells):
                arrow = " ↑" if higher else " ↓"
                lines.append(f"| {workload} N={n} | {label}{arrow} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def markdown(
    med: dict[str, dict[str, dict[str, float]]], servers: list[str], cases: list[str], reps: int
) -> str:
    columns = pairs(servers)
    head = ["case", "metric", *servers, *[f"{a}/{b}" for a, b in columns]]
    notes = []
    if ("product", "portal") in columns:
        notes.append("product/portal = the product path against the bare path")
    if ("product-cluster2", "product-cluster1") in columns:
        notes.append(
            "product-cluster2/product-cluster1 = two nodes of a cluster against one; "
            "a cluster's server CPU is the sum over its nodes"
        )
    lines = [
        f"Medians of {reps} repetition(s); ratio = server / node (↑ higher is better, ↓ lower is better)"
        + "".join(f"; {n}" for n in notes)
        + ".",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "|".join("---" if i < 2 else "---:" for i in range(len(head))) + "|",
    ]
    for case in cases:
        workload, n = case.rsplit("-", 1)
        for metric, label, higher in METRICS[workload]:
            row_values = {s: med.get(case, {}).get(s, {}).get(metric) for s in servers}
            if metric in OPTIONAL and all(v is None for v in row_values.values()):
                continue
            arrow = "" if metric in INFORMATIONAL else (" ↑" if higher else " ↓")
            cells = [f"{workload} N={n}", label + arrow, *[fmt(row_values[s]) for s in servers]]
            for a, b in columns:
                r = None if metric in INFORMATIONAL else ratio(row_values[a], row_values[b])
                cells.append(f"{r:.2f}×" if r is not None else "")
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def package_version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


def node_package_version(node_dir: Path, name: str) -> str:
    try:
        meta = json.loads((node_dir / "node_modules" / name / "package.json").read_text())
        return str(meta["version"])
    except (OSError, ValueError, KeyError):
        return "not installed"


def machine(node_dir: Path) -> dict[str, Any]:
    cpu_model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    node = subprocess.run(["node", "--version"], capture_output=True, text=True, check=False).stdout.strip()
    return {
        "nproc": os.cpu_count(),
        "cpu_model": cpu_model,
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "node": node,
        "versions": {
            "socket.io (node)": node_package_version(node_dir, "socket.io"),
            "engine.io (node)": node_package_version(node_dir, "engine.io"),
            "ws (node)": node_package_version(node_dir, "ws"),
            **{
                p: package_version(p)
                for p in (
                    "python-socketio",
                    "python-engineio",
                    "uvicorn",
                    "websockets",
                    "uvloop",
                    "httptools",
                )
            },
        },
    }


def build(
    *,
    runs: list[dict[str, Any]],
    servers: list[str],
    cases: list[str],
    labels: dict[str, str],
    profile: dict[str, Any],
    command: str,
    elapsed_s: float,
    node_dir: Path,
) -> dict[str, Any]:
    med = medians(runs)
    paired = paired_ratios(runs, servers)
    table = markdown(med, servers, cases, int(profile["reps"]))
    if int(profile["reps"]) > 1 and (more := paired_markdown(paired, servers, cases)):
        table += "\n\n" + more
    return {
        "command": command,
        "elapsed_s": round(elapsed_s, 1),
        "machine": machine(node_dir),
        "servers": {s: labels.get(s, s) for s in servers},
        "profile": profile,
        "cases": cases,
        "medians": med,
        "ratios": ratios(med, servers),
        "paired_ratios": paired,
        "runs": runs,
        "markdown": table,
    }


def chart(doc: dict[str, Any], path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    med = doc["medians"]
    bcases = sorted(
        (c for c in doc["cases"] if c.startswith("broadcast-")), key=lambda c: int(c.split("-")[1])
    )
    if not bcases:
        return False
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    for server in doc["servers"]:
        ns, rates, p99s = [], [], []
        for case in bcases:
            values = med.get(case, {}).get(server)
            if values:
                ns.append(int(case.split("-")[1]))
                rates.append(values["deliveries_per_s"])
                p99s.append(values["p99_ms"])
        if ns:
            ax1.plot(ns, rates, marker="o", label=server)
            ax2.plot(ns, p99s, marker="o", label=server)
    ax1.set(
        xscale="log",
        xlabel="subscribers in the room (N)",
        ylabel="deliveries/s at saturation",
        title="Broadcast throughput (higher is better)",
    )
    ax2.set(
        xscale="log",
        yscale="log",
        xlabel="subscribers in the room (N)",
        ylabel="p99 publish-to-receipt ms",
        title=f"p99 at {doc['profile']['sustained_deliveries_per_s']} deliveries/s (lower is better)",
    )
    for ax in (ax1, ax2):
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    ax1.set_ylim(bottom=0)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def write(doc: dict[str, Any], out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    json_path = out / "results.json"
    json_path.write_text(json.dumps(doc, indent=2) + "\n")
    md_path = out / "results.md"
    m = doc["machine"]
    md_path.write_text(
        f"# Benchmark results\n\n`{doc['command']}` — {doc['elapsed_s']} s, {m['nproc']} × {m['cpu_model']}\n\n"
        + "\n".join(f"- {s}: {label}" for s, label in doc["servers"].items())
        + "\n\n"
        + doc["markdown"]
        + "\n"
    )
    paths = [json_path, md_path]
    png = out / "chart.png"
    if chart(doc, png):
        paths.append(png)
    return paths
