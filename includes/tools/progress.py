"""``make progress``: run a learner's labs and print how far each one is.

``python -m includes.tools.progress [FOLDER] [--lab-timeout S] [--cell-timeout S]`` executes every
notebook of FOLDER (default ``labs/``; an instructor points it at a folder of collected labs) in a
kernel of its own, one after the other, every cell even after an error, with the checks
*recording* (each check runs and its outcome is kept; see includes/runtime/checks.py). Then one
table: per lab the checks passed and failed, the TODOs left (cells that still hold ``<FILL_IN>``),
and the first failing check's message; a lab that could not run (its set-up failed, its kernel
died, its time ran out) gets a line saying so. The learner's files are not changed.

Exit status: 0 when every check of every lab passed, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from includes.paths import display_path
from includes.runtime.checks import GREEN, RED, RESET, plain
from includes.runtime.numeric import pin as pin_numerics
from includes.tools.labs import LABS_DIR, is_check

LAB_TIMEOUT = 900  # seconds for one lab, all cells
CELL_TIMEOUT = 300
MARK = "__course_progress__ "
_START = "__import__('includes.runtime.checks', fromlist=['checks']).start_recording()"
_STOP = (f"print({MARK!r} + __import__('json').dumps("
         "__import__('includes.runtime.checks', fromlist=['checks']).stop_recording()))")


@dataclass
class LabProgress:
    name: str
    passed: int = 0
    failed: int = 0
    todos_left: int = 0
    first_failure: str = ""
    problem: str = ""  # why the lab could not run (to the end)
    seconds: float = 0.0
    records: list[dict] = field(default_factory=list)


def todo_cells(nb) -> list[int]:
    """The code cells with a ``<FILL_IN>`` left in code (a comment quoting one, as a solution's
    ``# LAB:`` lines do, is not a TODO)."""
    return [i for i, cell in enumerate(nb.cells) if cell.cell_type == "code"
            and any("<FILL_IN>" in line and not line.lstrip().startswith("#") for line in cell.source.split("\n"))]


def instrumented(nb) -> tuple[nbformat.NotebookNode, list[int]]:
    """A copy of ``nb`` with a recording switch around each check cell; the indices of the cells
    whose output holds the records."""
    out = nbformat.v4.new_notebook(metadata=nb.metadata)
    record_cells = []
    for cell in nb.cells:
        if is_check(cell):
            out.cells.append(nbformat.v4.new_code_cell(_START))
            out.cells.append(nbformat.v4.new_code_cell(cell.source, metadata=cell.metadata))
            record_cells.append(len(out.cells))
            out.cells.append(nbformat.v4.new_code_cell(_STOP))
        elif cell.cell_type == "code":
            out.cells.append(nbformat.v4.new_code_cell(cell.source, metadata=cell.metadata))
    for cell in out.cells:
        cell.pop("id", None)
    return out, record_cells


def _records_of(cell) -> list[dict]:
    for output in cell.get("outputs", []):
        for line in output.get("text", "").splitlines():
            if line.startswith(MARK):
                return json.loads(line[len(MARK):])
    return []


def _error_of(cell) -> str:
    for output in cell.get("outputs", []):
        if output.get("output_type") == "error":
            return f"{output['ename']}: {plain(str(output['evalue'])).splitlines()[0] if output['evalue'] else ''}"
    return ""


def run_lab(path: Path, lab_timeout: float = LAB_TIMEOUT, cell_timeout: float = CELL_TIMEOUT) -> LabProgress:
    """Execute one lab in its own kernel (every cell, errors or not) and count its checks."""
    from nbclient import NotebookClient

    path = Path(path)
    progress = LabProgress(path.stem)
    try:
        nb = nbformat.read(path, as_version=4)
    except Exception as exc:  # not a notebook
        progress.problem = f"cannot read it: {type(exc).__name__}: {exc}"
        return progress
    progress.todos_left = len(todo_cells(nb))
    run_nb, record_cells = instrumented(nb)
    env = dict(os.environ)
    pin_numerics(env)
    # the kernel starts in labs/ whatever folder the file is in: `%run ../includes/...` must resolve
    client = NotebookClient(run_nb, kernel_name="python3", allow_errors=True,
                            resources={"metadata": {"path": str(LABS_DIR)}},
                            extra_arguments=["--Application.log_level=ERROR"])
    start = time.monotonic()
    try:
        with client.setup_kernel(env=env):
            for index, cell in enumerate(run_nb.cells):
                left = lab_timeout - (time.monotonic() - start)
                if left <= 0:
                    raise TimeoutError
                client.timeout = int(max(1, min(cell_timeout, left)))
                client.execute_cell(cell, index)
                if index == 0 and _error_of(cell):  # the set-up cell
                    progress.problem = f"its set-up cell failed: {_error_of(cell)}"
                    break
    except TimeoutError:
        progress.problem = f"stopped after {lab_timeout:.0f} s (its time limit)"
    except Exception as exc:  # nbclient's timeout, a dead kernel, ...
        name = type(exc).__name__
        progress.problem = ("a cell ran longer than its time limit" if "Timeout" in name
                            else f"the kernel stopped: {name}: {str(exc).splitlines()[0] if str(exc) else ''}")
    progress.seconds = time.monotonic() - start
    for index in record_cells:
        records = _records_of(run_nb.cells[index])
        error = _error_of(run_nb.cells[index - 1])
        if error and not any(not r["passed"] for r in records):
            # the check cell stopped on its own code before any check failed (e.g. a name not defined yet)
            records = records + [{"description": "the check cell ran", "passed": False, "kind": "error",
                                  "message": f"FAIL: the check cell ran\n  it raised {error}"}]
        progress.records += records
    progress.passed = sum(r["passed"] for r in progress.records)
    progress.failed = sum(not r["passed"] for r in progress.records)
    failures = [r for r in progress.records if not r["passed"]]
    if failures:
        progress.first_failure = plain(failures[0]["message"])
    return progress


def table(results: list[LabProgress], colour: bool = False) -> str:
    """The progress table, one row per lab and, under a row, its first failure or its problem."""
    def paint(text: str, code: str, on: bool) -> str:
        return f"{code}{text}{RESET}" if colour and on else text

    width = max([len(r.name) for r in results] + [3])
    lines = [f"{'lab':<{width}}  {'passed':>6}  {'failed':>6}  {'TODOs left':>10}  status"]
    for r in results:
        if r.problem:
            status = paint("could not run: " + r.problem, RED, True)
        elif r.failed or r.todos_left:
            status = paint("FAIL", RED, True)
        else:
            status = paint("PASS", GREEN, True)
        lines.append(f"{r.name:<{width}}  {paint(f'{r.passed:>6}', GREEN, r.passed > 0)}  "
                     f"{paint(f'{r.failed:>6}', RED, r.failed > 0)}  {r.todos_left:>10}  {status}")
        if r.first_failure:
            first, *rest = r.first_failure.split("\n")
            lines.append(" " * (width + 2) + "first failure: " + first)
            lines += [" " * (width + 2) + "  " + line.strip() for line in rest]
    total_passed, total_failed = sum(r.passed for r in results), sum(r.failed for r in results)
    lines.append(f"{len(results)} labs: {total_passed} checks passed, {total_failed} failed, "
                 f"{sum(r.todos_left for r in results)} TODOs left, {sum(bool(r.problem) for r in results)} "
                 "could not run")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m includes.tools.progress", description=__doc__.split("\n")[0])
    parser.add_argument("folder", nargs="?", default=str(LABS_DIR), help="the labs to run (default: labs/)")
    parser.add_argument("--lab-timeout", type=float, default=LAB_TIMEOUT, help="seconds for one lab")
    parser.add_argument("--cell-timeout", type=float, default=CELL_TIMEOUT, help="seconds for one cell")
    parser.add_argument("--colour", choices=["auto", "always", "never"], default="auto")
    args = parser.parse_args(argv)
    folder = Path(args.folder)
    if not folder.is_absolute():
        folder = Path.cwd() / folder
    paths = sorted(folder.glob("*.ipynb"))
    if not paths:
        print(f"no notebooks in {display_path(folder)}", file=sys.stderr)
        return 1
    colour = args.colour == "always" or (args.colour == "auto" and sys.stdout.isatty())
    print(f"Running {len(paths)} labs from {display_path(folder)}, one at a time "
          f"(at most {args.lab_timeout:.0f} s each)", flush=True)
    results = []
    for path in paths:
        result = run_lab(path, args.lab_timeout, args.cell_timeout)
        print(f"  {result.name}: {result.seconds:.0f} s", flush=True)
        results.append(result)
    print(table(results, colour))
    return 0 if all(not r.problem and not r.failed and not r.todos_left for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
