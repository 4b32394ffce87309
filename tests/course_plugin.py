"""The pytest plugin of `make test` (pytest.ini loads it with ``-p tests.course_plugin``).

1. Lab probes inside nbval's run. A solution notebook executes once per suite run: nbval runs it
   cell by cell in one kernel and compares every output with the stored one. Just before nbval
   runs a TODO cell (a cell with ``# BEGIN SOLUTION`` regions), this plugin uses the same kernel to
   - run the *lab's* version of the first TODO cell (``<FILL_IN>`` in place of each answer) and
     require it to stop with ``TodoNotDone``: the cells before it are the solution's cells
     unchanged (tests/test_labs.py checks that), which nbval has just run without error, so the
     generated lab runs unchanged up to its first TODO and stops there;
   - run the TODO cell with every answer replaced by ``pass``, then the check cell that follows,
     and require the check to fail with ``LabCheckError`` and a ``FAIL:`` message.
   Then nbval runs the real cell; the check cell, when its turn comes, must pass with the stored
   output. A probe that finds a problem fails the TODO cell's test with the reason.

2. The execution table. At the end the suite prints, per notebook, how many times it was
   executed (nbval's run, plus every whole-notebook run a test records with the
   ``notebook_runs`` fixture) and the seconds spent, so the cost of each notebook stays visible.
"""

from __future__ import annotations

import copy
import re
from collections import defaultdict
from pathlib import Path

import pytest

RUN_PROPERTY = "notebook_execution"
PROBE_TIMEOUT = 1800


def without_answer(source: str) -> str:
    """The TODO cell with its answer removed (each solution region replaced by ``pass``)."""
    return re.sub(
        r"^(\s*)# BEGIN SOLUTION\s*$.*?^\s*# END SOLUTION\s*$",
        lambda m: f"{m.group(1)}pass",
        source,
        flags=re.S | re.M,
    )


def run_in_kernel(kernel, code: str, timeout: float = PROBE_TIMEOUT) -> dict:
    """Execute ``code`` in nbval's kernel; return the execute_reply content (status, ename, evalue)."""
    msg_id = kernel.execute_cell_input(code, allow_stdin=False)
    while True:
        msg = kernel.get_message(stream="shell", timeout=timeout)
        if msg["parent_header"].get("msg_id") == msg_id:
            reply = msg["content"]
            break
    kernel.await_idle(msg_id, timeout)  # its outputs are drained before nbval's next cell
    return reply


_structures: dict[str, object] = {}


def lab_probes(item) -> list[str]:
    """Run the probes due before this nbval cell of a solution notebook; return the problems found."""
    from includes.tools.labs import analyse, strip_solution

    nb = item.parent.nb
    index = next(i for i, cell in enumerate(nb.cells) if cell is item.cell)
    key = str(item.fspath)
    if key not in _structures:
        _structures[key] = analyse(nb, Path(key).name)
    structure = _structures[key]
    if index not in structure.todo_cells:
        return []
    kernel = item.parent.kernel
    problems = []
    if index == structure.todo_cells[0]:
        reply = run_in_kernel(kernel, strip_solution(item.cell.source))
        if reply.get("ename") != "TodoNotDone":
            problems.append(f"the lab's first TODO cell (cell {index}) ended with {reply.get('status')} "
                            f"{reply.get('ename', '')}: {reply.get('evalue', '')}, not TodoNotDone")
    check_index = min(c for c in structure.check_cells if c > index)
    run_in_kernel(kernel, without_answer(item.cell.source))  # may fail by itself; the check must catch it
    reply = run_in_kernel(kernel, copy.deepcopy(nb.cells[check_index]).source)
    if reply.get("status") == "ok":
        problems.append(f"check cell {check_index} passed although TODO cell {index} had no answer")
    elif reply.get("ename") != "LabCheckError":
        problems.append(f"check cell {check_index} failed with {reply.get('ename')}, not LabCheckError")
    elif "FAIL:" not in reply.get("evalue", ""):
        problems.append(f"check cell {check_index}: its message does not say what failed")
    return problems


def _is_solution_cell(item) -> bool:
    return type(item).__name__ == "IPyNbCell" and Path(str(item.fspath)).parent.name == "solutions"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    problems = lab_probes(item) if _is_solution_cell(item) else []
    result = yield
    if problems:
        raise AssertionError("lab probe: " + "\n".join(problems))
    return result


# --- the execution table ---------------------------------------------------------------------

class ExecutionTable:
    def __init__(self):
        self.nbval_seconds: dict[str, float] = defaultdict(float)
        self.runs: dict[str, list[float]] = defaultdict(list)

    def add(self, report) -> None:
        path = report.nodeid.split("::", 1)[0]
        if path.endswith(".ipynb"):
            self.nbval_seconds[path] += report.duration
        if report.when == "call":
            for name, value in report.user_properties:
                if name == RUN_PROPERTY:
                    notebook, seconds = value
                    self.runs[notebook].append(seconds)

    def lines(self) -> list[str]:
        names = sorted(set(self.nbval_seconds) | set(self.runs))
        if not names:
            return []
        out = [f"{'notebook':<58} {'runs':>4} {'seconds':>8}"]
        total_runs, total_seconds = 0, 0.0
        for name in names:
            runs = (1 if name in self.nbval_seconds else 0) + len(self.runs[name])
            seconds = self.nbval_seconds.get(name, 0.0) + sum(self.runs[name])
            total_runs += runs
            total_seconds += seconds
            detail = "" if not self.runs[name] else f"   (nbval {self.nbval_seconds.get(name, 0):.0f} s + " \
                + " + ".join(f"{s:.0f} s" for s in self.runs[name]) + " in tests)"
            out.append(f"{name:<58} {runs:>4} {seconds:>8.0f}{detail}")
        out.append(f"{'all notebooks':<58} {total_runs:>4} {total_seconds:>8.0f}   (worker seconds)")
        return out


_table: ExecutionTable | None = None


def pytest_configure(config):
    global _table
    if not hasattr(config, "workerinput"):  # the controller (or a run without xdist) keeps the table
        _table = ExecutionTable()


def pytest_runtest_logreport(report):
    if _table is not None:
        _table.add(report)


def pytest_terminal_summary(terminalreporter, config):
    lines = _table.lines() if _table is not None else []
    if lines:
        terminalreporter.section("notebook executions")
        for line in lines:
            terminalreporter.write_line(line)


@pytest.fixture
def notebook_runs(request):
    """``run(path, env=None)`` executes a whole notebook (includes.tools.runner.execute) and records
    it in the execution table. Every test that uses it says in its docstring why nbval's run of
    that notebook is not enough."""
    from includes.paths import display_path
    from includes.tools.runner import execute

    def run(path, env=None):
        result = execute(path, env=env)
        request.node.user_properties.append((RUN_PROPERTY, (display_path(path), result.seconds)))
        return result

    return run
