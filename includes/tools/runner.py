"""Execute the course's notebooks headless.

``python -m includes.tools.runner course``   runs every lesson and solution, writes executed copies and
                                       HTML to build/, prints one line per notebook and the total
                                       (two notebooks at a time; ``COURSE_JOBS=1`` for one).
``python -m includes.tools.runner outputs [NOTEBOOK ...]``  re-executes notebooks in place to refresh
                                       their stored outputs (default: all of notebooks/ and
                                       solutions/), then regenerates labs/.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import nbformat

from includes.paths import COURSE_ROOT, display_path
from includes.runtime.numeric import pin as pin_numerics
EXECUTED_DIRS = ("notebooks", "solutions")
BUILD_DIR = COURSE_ROOT / "build"
CELL_TIMEOUT = 1800


@dataclass
class Result:
    path: Path
    seconds: float
    error: str | None
    notebook: nbformat.NotebookNode

    @property
    def ok(self) -> bool:
        return self.error is None

    def slowest_cells(self, n: int = 3) -> list[tuple[int, float]]:
        """The ``n`` slowest code cells as (cell index, seconds), slowest first."""
        return sorted(cell_seconds(self.notebook).items(), key=lambda item: -item[1])[:n]

    def timing_line(self, n: int = 3) -> str:
        cells = ", ".join(f"cell {index} {seconds:.0f} s" for index, seconds in self.slowest_cells(n))
        return f"         slowest: {cells}" if cells else ""


def cell_seconds(nb: nbformat.NotebookNode) -> dict[int, float]:
    """Seconds each executed code cell took, from the timing nbclient records in its metadata."""
    from datetime import datetime

    seconds = {}
    for index, cell in enumerate(nb.cells):
        timing = cell.get("metadata", {}).get("execution", {})
        start, end = timing.get("iopub.execute_input"), timing.get("shell.execute_reply")
        if cell.cell_type == "code" and start and end:
            seconds[index] = (datetime.fromisoformat(end.replace("Z", "+00:00"))
                              - datetime.fromisoformat(start.replace("Z", "+00:00"))).total_seconds()
    return seconds


def course_notebooks(dirs: tuple[str, ...] = EXECUTED_DIRS) -> list[Path]:
    """Lessons then solutions, each in agenda (file name) order."""
    return [path for name in dirs for path in sorted((COURSE_ROOT / name).glob("*.ipynb"))]


def execute(path: Path, env: dict[str, str] | None = None, timeout: int = CELL_TIMEOUT) -> Result:
    """Run a notebook top to bottom in a fresh kernel, in the notebook's own folder."""
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    path = Path(path).resolve()
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb,
        timeout=timeout,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},
        record_timing=True,  # per-cell seconds for the run reports; removed before outputs are stored
        # the kernel's own log (e.g. its warning about TCP transport) is not course output
        extra_arguments=["--Application.log_level=ERROR"],
    )
    start = time.monotonic()
    error = None
    # env (a complete environment) lets the cluster test point a notebook at a cluster; the kernel
    # gets the numeric pin whatever the caller's environment says
    env = dict(os.environ if env is None else env)
    pin_numerics(env)
    try:
        client.execute(env=env)
    except CellExecutionError as exc:
        error = _first_line_of_error(exc)
    except Exception as exc:  # kernel died, timeout, ...
        error = f"{type(exc).__name__}: {exc}"
    return Result(path, time.monotonic() - start, error, nb)


def _first_line_of_error(exc: Exception) -> str:
    ename = getattr(exc, "ename", type(exc).__name__)
    evalue = str(getattr(exc, "evalue", "")).strip().splitlines()
    return f"{ename}: {evalue[0] if evalue else ''}"


def save_build(result: Result, build_dir: Path = BUILD_DIR) -> None:
    """Write the executed notebook and its HTML rendering under build/."""
    from nbconvert import HTMLExporter

    folder = result.path.parent.name
    executed = build_dir / "executed" / folder / result.path.name
    html = build_dir / "html" / folder / (result.path.stem + ".html")
    executed.parent.mkdir(parents=True, exist_ok=True)
    html.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(result.notebook, executed)
    body, _ = HTMLExporter().from_notebook_node(result.notebook)
    html.write_text(body, encoding="utf-8")


DEFAULT_JOBS = 2  # 16 notebooks on 2 cores, one run each: 535.6 s two at a time, 570.9 s one at a time


def course_jobs() -> int:
    """How many notebooks ``make course`` runs at a time: ``$COURSE_JOBS`` (default :data:`DEFAULT_JOBS`)."""
    value = os.environ.get("COURSE_JOBS", "").strip() or str(DEFAULT_JOBS)
    if not value.isdigit() or int(value) < 1:
        raise SystemExit(f"COURSE_JOBS must be a whole number >= 1, got {value!r}")
    return int(value)


def run_course(paths: list[Path], build_dir: Path = BUILD_DIR, jobs: int = 1) -> int:
    """Execute every notebook (``jobs`` at a time), save executed copies and HTML, print the table."""
    from concurrent.futures import ThreadPoolExecutor, as_completed

    failures = 0
    busy = 0.0
    seconds: dict[str, float] = {}
    print(f"Running {len(paths)} notebooks, {jobs} at a time; executed copies and HTML go to "
          f"{display_path(build_dir)}/", flush=True)
    start = time.monotonic()
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = [pool.submit(execute, path) for path in paths]
        for future in as_completed(futures):
            result = future.result()
            busy += result.seconds
            seconds[result.path.stem] = result.seconds
            save_build(result, build_dir)
            status = "OK" if result.ok else "FAILED"
            line = f"{status:<7}{result.seconds:7.1f} s  {display_path(result.path)}"
            if not result.ok:
                failures += 1
                line += f"\n         {result.error}"
            elif result.timing_line():
                line += "\n" + result.timing_line()
            print(line, flush=True)
    wall = time.monotonic() - start
    print(f"{'TOTAL':<7}{wall:7.1f} s  {len(paths) - failures} OK, {failures} failed "
          f"(the whole course took {wall / 60:.1f} min; notebooks ran {busy:.0f} s in all, {jobs} at a time)")
    if not failures:
        record = write_times(seconds, wall, jobs, build_dir / TIMES_NAME)
        print(f"run times recorded in {display_path(record)} (`python -m includes.tools.agenda --times "
              f"{display_path(record)} --write` puts them in the README's agenda)")
    return 1 if failures else 0


TIMES_NAME = "course-times.json"


def write_times(seconds: dict[str, float], wall: float, jobs: int, path: Path) -> Path:
    """Record one ``make course`` run: each notebook's seconds, the whole run's, and the machine
    (one line for the README's agenda, and :func:`includes.tools.machine.describe`)."""
    import json

    from includes.tools.machine import describe

    machine = describe()
    record = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{machine['cpu']}, {machine['logical_cores']} cores",
        "machine_description": machine,
        "jobs": jobs,
        "wall_seconds": round(wall, 1),
        "notebooks": {stem: round(value, 1) for stem, value in sorted(seconds.items())},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    return path


def refresh_outputs(paths: list[Path]) -> int:
    """Re-execute notebooks in place (stored outputs), then regenerate the labs of the solutions
    among them (other labs are left alone: someone may be editing their solution)."""
    from includes.tools import labs

    failures = 0
    for path in paths:
        result = execute(path)
        if not result.ok:
            failures += 1
            print(f"FAILED {result.seconds:7.1f} s  {display_path(path)}\n         {result.error}", flush=True)
            continue
        timing = result.timing_line()
        for cell in result.notebook.cells:
            cell.metadata.pop("execution", None)
        nbformat.write(result.notebook, path)
        print(f"OK     {result.seconds:7.1f} s  {display_path(path)}", flush=True)
        if timing:
            print(timing, flush=True)
        if path.resolve().parent == labs.SOLUTIONS_DIR.resolve():
            print(f"lab    {display_path(labs.generate_one(path))}")
    return 1 if failures else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m includes.tools.runner")
    parser.add_argument("command", choices=["course", "outputs"])
    parser.add_argument("notebooks", nargs="*", type=Path)
    args = parser.parse_args(argv)
    paths = [p.resolve() for p in args.notebooks] or course_notebooks()
    if args.command == "course":
        return run_course(paths, jobs=course_jobs())
    return refresh_outputs(paths)


if __name__ == "__main__":
    sys.exit(main())
