"""The scaling benchmark's curves, drawn from its results file alone (``benchmarks/scaling.py``).

    from scaling_plot import load, plot_scaling, crossover, failure
    results = load("benchmarks/results/scaling.json")
    figure = plot_scaling(results)            # per workload: time and peak memory against size

Or from the command line: ``.venv/bin/python benchmarks/scaling_plot.py RESULTS.json OUT.png``.

Only the standard library and matplotlib: no Spark, pandas or numpy, so a notebook can draw the
committed results without running anything. For each workload, two log-log panels: the median
seconds of the successful runs against size, and the peak memory (RSS of every process of the run)
against size, one line per backend. A failed point is a cross labelled with its outcome; the
crossover (the size from which a Spark backend is faster than the single process, interpolated in
log-log between the measured sizes) and the single process's wall (the first size at which it
failed) are vertical lines; the memory panel also shows the machine's RAM and the single
process's address-space limit.
"""

from __future__ import annotations

import json
import math
import statistics
import sys
from pathlib import Path

OK = "ok"
SKIPPED = "skipped after failure"
BACKEND_STYLE = {"single": ("C0", "o", "one process (pandas / scikit-learn / NumPy)"),
                 "local": ("C1", "s", "Spark local[*]"),
                 "cluster": ("C2", "^", "Spark standalone cluster")}
WORKLOAD_TITLE = {"pipeline": "Airbnb features + linear regression",
                  "als": "ALS matrix factorisation (ratings)",
                  "scoring": "batch scoring, scikit-learn forest"}
GIB = 1 << 30


def load(path, allow_quick: bool = False) -> dict:
    """The results file; a quick mode's file (a smoke test on tiny sizes, not a measurement) only
    with ``allow_quick=True``."""
    results = json.loads(Path(path).read_text(encoding="utf-8"))
    if not str(results.get("format", "")).startswith("course-scaling/"):
        raise ValueError(f"{path} is not a scaling benchmark results file")
    if results.get("mode") != "full" and not allow_quick:
        raise ValueError(f"{path} holds a {results.get('mode')} mode's smoke test, not measurements "
                         "(load(..., allow_quick=True) to draw it anyway)")
    problems = problems_of(results)
    if problems:
        raise ValueError(f"{path}: " + "; ".join(problems[:5]))
    return results


def problems_of(results: dict) -> list[str]:
    """What a results file lacks: the machine's description, a record's keys, an ok run's numbers."""
    problems = [f"machine lacks {key}" for key in ("cpu", "logical_cores", "ram_bytes", "os", "spark", "numpy")
                if key not in results.get("machine", {})]
    for index, record in enumerate(results.get("records", [])):
        missing = [k for k in ("workload", "backend", "size", "run", "outcome") if k not in record]
        if record.get("outcome") == OK:
            missing += [k for k in ("seconds", "peak_rss_bytes", "process_seconds") if k not in record]
        elif record.get("outcome") != SKIPPED:
            missing += [k for k in ("peak_rss_bytes", "process_seconds") if k not in record]
        if missing:
            problems.append(f"record {index} lacks {', '.join(missing)}")
    if not results.get("records"):
        problems.append("no records")
    return problems


def points(results: dict, workload: str, backend: str) -> list[dict]:
    """Per size, in order: median seconds of the ok runs (None if none), the largest peak memory,
    the outcome (the first failure's if a run failed) and the seconds until the failure."""
    by_size: dict[int, list[dict]] = {}
    for record in results["records"]:
        if record["workload"] == workload and record["backend"] == backend:
            by_size.setdefault(record["size"], []).append(record)
    rows = []
    for size in sorted(by_size):
        records = by_size[size]
        ok = [r["seconds"] for r in records if r["outcome"] == OK and "seconds" in r]
        failures = [r for r in records if r["outcome"] != OK]
        peaks = [r["peak_rss_bytes"] for r in records if r.get("peak_rss_bytes")]
        rows.append({"size": size, "seconds": statistics.median(ok) if ok else None,
                     "peak_bytes": max(peaks) if peaks else None,
                     "outcome": failures[0]["outcome"] if failures else OK,
                     "failed_after": failures[0].get("process_seconds") if failures else None})
    return rows


def failure(results: dict, workload: str, backend: str = "single") -> dict | None:
    """The first size at which ``backend`` failed (not counting skipped sizes): {size, outcome}."""
    for row in points(results, workload, backend):
        if row["outcome"] not in (OK, SKIPPED):
            return {"size": row["size"], "outcome": row["outcome"]}
    return None


def _log_curve(rows: list[dict]):
    """(log sizes, log seconds) of the measured points, in order of size."""
    ok = [r for r in rows if r["seconds"]]
    return [math.log(r["size"]) for r in ok], [math.log(r["seconds"]) for r in ok]


def _interpolate(xs: list[float], ys: list[float], x: float) -> float:
    for (x0, y0), (x1, y1) in zip(zip(xs, ys), zip(xs[1:], ys[1:])):
        if x0 <= x <= x1:
            return y0 + (y1 - y0) * (x - x0) / (x1 - x0) if x1 > x0 else y0
    return ys[0] if x <= xs[0] else ys[-1]


def crossover(results: dict, workload: str, spark: str = "local", single: str = "single") -> dict | None:
    """Where ``spark`` becomes faster than ``single`` for ``workload``.

    Each backend's median times are joined by straight lines in log-log; where both were measured
    (from the larger of their smallest sizes to the smaller of their largest), the first size at
    which Spark's line is at or below the single process's gives ``{"size": s, "kind": k}`` with
    kind ``"measured"`` (the lines cross at s), or ``"below"`` (Spark is faster already at s, the
    start of the common range). Kind ``"wall"``: Spark never was faster where both ran, and the
    single process failed at size s, which Spark ran. None when neither happened in the data."""
    one, other = points(results, workload, single), points(results, workload, spark)
    (x1, y1), (x2, y2) = _log_curve(one), _log_curve(other)
    if x1 and x2:
        low, high = max(x1[0], x2[0]), min(x1[-1], x2[-1])
        grid = sorted({x for x in x1 + x2 if low <= x <= high})
        gaps = [_interpolate(x2, y2, x) - _interpolate(x1, y1, x) for x in grid]
        for index, (x, gap) in enumerate(zip(grid, gaps)):
            if gap <= 0:
                if index == 0:
                    return {"size": round(math.exp(x)), "kind": "below"}
                x0, gap0 = grid[index - 1], gaps[index - 1]
                return {"size": math.exp(x0 + (x - x0) * gap0 / (gap0 - gap)), "kind": "measured"}
    wall = failure(results, workload, single)
    if wall and any(p["size"] == wall["size"] and p["seconds"] for p in other):
        return {"size": wall["size"], "kind": "wall"}
    return None


def describe_size(size: float) -> str:
    exponent = math.floor(math.log10(size))
    mantissa = size / 10 ** exponent
    return f"{mantissa:.1f}e{exponent}" if round(mantissa, 1) != 1 else f"1e{exponent}"


def _tick_label(value: float, _position=None) -> str:
    """Plain numbers on a log axis, at 1, 2 and 5 times a power of ten only."""
    if value <= 0:
        return ""
    mantissa = value / 10 ** math.floor(math.log10(value) + 1e-9)
    return f"{value:g}" if any(abs(mantissa - m) < 1e-6 for m in (1, 2, 5)) else ""


def plot_scaling(results: dict, workloads=None, backends=None, figsize_per_row=(11, 3.6)):
    """A figure: one row per workload, time (left) and peak memory (right) against size, log-log."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter

    present = []
    for record in results["records"]:
        if record["workload"] not in present:
            present.append(record["workload"])
    workloads = list(workloads or present)
    backends = list(backends or BACKEND_STYLE)
    figure, axes = plt.subplots(len(workloads), 2, figsize=(figsize_per_row[0], figsize_per_row[1] * len(workloads)),
                                squeeze=False)
    ram = results.get("machine", {}).get("ram_bytes")
    limit = results.get("settings", {}).get("single_address_space")
    for row, workload in enumerate(workloads):
        time_ax, memory_ax = axes[row]
        unit = "ratings" if workload == "als" else "rows"
        for backend in backends:
            data = points(results, workload, backend)
            if not data:
                continue
            colour, marker, label = BACKEND_STYLE.get(backend, ("C7", "o", backend))
            ok = [p for p in data if p["seconds"] is not None]
            time_ax.plot([p["size"] for p in ok], [p["seconds"] for p in ok], marker=marker, color=colour, label=label)
            measured = [p for p in data if p["peak_bytes"]]
            memory_ax.plot([p["size"] for p in measured], [p["peak_bytes"] / GIB for p in measured], marker=marker,
                           color=colour, label=label)
            for p in data:
                if p["outcome"] in (OK, SKIPPED):
                    continue
                y = p["failed_after"] or (ok[-1]["seconds"] if ok else 1.0)
                time_ax.plot([p["size"]], [y], marker="x", markersize=11, mew=2.5, color=colour, linestyle="none")
                time_ax.annotate(p["outcome"], (p["size"], y), textcoords="offset points", xytext=(6, 6),
                                 fontsize=8, color=colour)
                if p["peak_bytes"]:
                    memory_ax.plot([p["size"]], [p["peak_bytes"] / GIB], marker="x", markersize=11, mew=2.5,
                                   color=colour, linestyle="none")
        wall = failure(results, workload)
        for ax in (time_ax, memory_ax):
            if wall:
                ax.axvline(wall["size"], color="C3", linestyle=":", linewidth=1.5,
                           label=f"one process fails ({wall['outcome']}) at {describe_size(wall['size'])}")
        for spark in ("local", "cluster"):
            cross = crossover(results, workload, spark)
            if cross and cross["kind"] in ("measured", "below"):
                word = "≈" if cross["kind"] == "measured" else "≤"
                time_ax.axvline(cross["size"], color=BACKEND_STYLE[spark][0], linestyle="--", linewidth=1,
                                label=f"{BACKEND_STYLE[spark][2]} faster from {word} {describe_size(cross['size'])}")
        if ram:
            memory_ax.axhline(ram / GIB, color="0.3", linestyle="-", linewidth=0.8, label=f"RAM {ram / GIB:.0f} GiB")
        if limit:
            memory_ax.axhline(limit / GIB, color="C3", linestyle="--", linewidth=0.8,
                              label=f"one process's limit {limit / GIB:.1f} GiB")
        sizes = sorted({r["size"] for r in results["records"] if r["workload"] == workload})
        for ax, ylabel in ((time_ax, "seconds (median)"), (memory_ax, "peak memory, GiB (all processes)")):
            if len(sizes) == 1:  # one size: a range around it (log axes need one)
                ax.set_xlim(sizes[0] / 3, sizes[0] * 3)
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.yaxis.set_major_formatter(FuncFormatter(_tick_label))
            ax.yaxis.set_minor_formatter(FuncFormatter(_tick_label))
            ax.set_xlabel(unit)
            ax.set_ylabel(ylabel)
            ax.grid(True, which="major", alpha=0.3)
            ax.legend(fontsize=7, loc="best", framealpha=0.7)
        time_ax.set_title(f"{WORKLOAD_TITLE.get(workload, workload)}: time", fontsize=10)
        memory_ax.set_title(f"{WORKLOAD_TITLE.get(workload, workload)}: memory", fontsize=10)
    figure.tight_layout()
    return figure


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2:
        print(__doc__.split("\n\n")[1])
        return 2
    import matplotlib

    matplotlib.use("Agg")
    plot_scaling(load(argv[0], allow_quick=True)).savefig(argv[1], dpi=110)
    return 0


if __name__ == "__main__":
    sys.exit(main())
