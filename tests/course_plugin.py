"""The pytest plugin of `make test` (pytest.ini loads it with ``-p tests.course_plugin``).

1. Lab probes inside nbval's run. A solution notebook executes once per suite run: nbval runs it
   cell by cell in one kernel and compares every output with the stored one. Just before nbval
   runs a TODO cell (a cell with ``# BEGIN SOLUTION`` regions), this plugin uses the same kernel to
   run the lab's own code (each region's ``# LAB:`` stub, which must hold ``<FILL_IN>``) followed by
   the check cell, with the checks *recording* (each check runs and its outcome is kept, none raises):
   - the lab's cell, every answer stubbed: the first TODO cell must stop with ``TodoNotDone`` (the
     cells before it are the solution's cells unchanged, tests/test_labs.py checks that, and nbval
     has just run them without error), a later one must not stop with another error; then *every*
     check must fail, the first because of the answer (a wrong or undefined value, a
     ``<FILL_IN>``), not because checking it raised an unrelated error;
   - with several regions, each region stubbed alone (the other answers in place): some check
     must fail, the first because of the answer;
   - each mistake of the solution's catalogue (``solutions/<stem>.mistakes.toml``) made in the
     cell: the first failing check's message must name it; a mistake that Python, Spark or MLflow
     refuses at the learner's own line (``raises``) must stop the cell with that error, and the
     message the learner sees must name it.
   Then nbval runs the real cell; the check cell, when its turn comes, must pass with the stored
   output. A probe that finds a problem fails the TODO cell's test with the reason. The seconds of
   each probe are kept: the suite prints them per solution ("lab probes": stubs, mistakes, the
   slowest mistakes), so a catalogue's cost stays visible.

2. The numeric pin. Loaded first (``-p``), before anything imports numpy, the plugin sets
   :func:`includes.runtime.numeric.pin` in this process's environment, which every xdist worker,
   every kernel nbval starts and every notebook a test executes inherits: the suite checks the stored
   outputs with the numbers every machine computes, whatever the environment it was started from.

3. Lessons on a real cluster. nbval runs the notebooks listed in pytest.ini's
   ``course_cluster_notebooks`` against a Spark standalone master and worker that this plugin
   starts on 127.0.0.1 (one per xdist worker, when its first such notebook comes up; stopped when
   the worker ends, also after a failure): the kernel nbval starts for them inherits
   ``COURSE_SPARK_MASTER``. Their stored outputs are what the cluster must reproduce, cell by cell
   (the set-up cell's ``master`` URL is the one sanitised text, tests/nbval_sanitize.cfg), and
   after their set-up cell the master must list the lesson's application. The lab probes of a
   listed solution run on the cluster too.

4. The execution table. At the end the suite prints, per notebook, how many times it was
   executed (nbval's run, plus every whole-notebook run a test records with the
   ``notebook_runs`` fixture) and the seconds spent, so the cost of each notebook stays visible.
"""

from __future__ import annotations

import ast
import json
import os
import sys
import time
import tomllib
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import pytest

if str(Path(__file__).resolve().parent.parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from includes.runtime.numeric import pin as pin_numerics  # noqa: E402

pin_numerics()

RUN_PROPERTY = "notebook_execution"
PROBE_PROPERTY = "lab_probe"  # (what, seconds): one per probe run of a TODO cell, for the probe table
PROBE_TIMEOUT = 1800


def run_in_kernel(kernel, code: str, timeout: float = PROBE_TIMEOUT, expressions: dict | None = None) -> dict:
    """Execute ``code`` in nbval's kernel; return the execute_reply content (status, ename, evalue,
    and the values of ``expressions``, evaluated after the code, as user_expressions)."""
    msg_id = kernel.kc.execute(code, store_history=False, allow_stdin=False, stop_on_error=False,
                               user_expressions=expressions or {})
    while True:
        msg = kernel.get_message(stream="shell", timeout=timeout)
        if msg["parent_header"].get("msg_id") == msg_id:
            reply = msg["content"]
            break
    kernel.await_idle(msg_id, timeout)  # its outputs are drained before nbval's next cell
    return reply


_START_RECORDING = "__import__('includes.runtime.checks', fromlist=['checks']).start_recording()"
_RECORDS = "__import__('json').dumps(__import__('includes.runtime.checks', fromlist=['checks']).stop_recording())"


def run_check_cell(kernel, source: str) -> tuple[list[dict], dict]:
    """Run a check cell with its checks recording (none raises): every check's outcome, in order,
    and the cell's reply (an error here was raised outside the checks, and ended the cell)."""
    run_in_kernel(kernel, _START_RECORDING)
    reply = run_in_kernel(kernel, source)
    fetched = run_in_kernel(kernel, "", expressions={"records": _RECORDS})["user_expressions"]["records"]
    return json.loads(ast.literal_eval(fetched["data"]["text/plain"])), reply


def _first_line(text: str) -> str:
    return " / ".join(line.strip() for line in text.split("\n")[:3])


def verdict(records: list[dict], reply: dict, check_index: int, what: str, every: bool = False) -> list[str]:
    """What is wrong with a check cell's outcome when ``what`` (an answer is missing): it must fail,
    its first failing check must fail because of the answer (a wrong or undefined value, a <FILL_IN>),
    not because checking raised an unrelated error; with ``every``, no check may pass."""
    from includes.runtime.checks import CATCHES

    failed = [r for r in records if not r["passed"]]
    if not failed:
        if reply.get("status") == "error":
            return [f"check cell {check_index} raised {reply.get('ename')} outside its checks when {what}: "
                    f"{reply.get('evalue', '')}"]
        return [f"check cell {check_index} passed although {what}"]
    problems = []
    if failed[0]["kind"] not in CATCHES:
        problems.append(f"check cell {check_index}: its first failing check failed on an unrelated error when "
                        f"{what}, not because of the answer: {_first_line(failed[0]['message'])}")
    if every:
        problems += [f"check cell {check_index}: {r['description']!r} passes although {what}"
                     for r in records if r["passed"]]
    return problems


def _todo_run_problem(reply: dict, index: int, what: str, first: bool) -> list[str]:
    if reply.get("ename") == "TodoNotDone" or (reply.get("status") == "ok" and not first):
        return []  # a stub inside a function body stops only when the function is called
    return [f"TODO cell {index} with {what} ended with {reply.get('status')} {reply.get('ename', '')}: "
            f"{reply.get('evalue', '')}, not TodoNotDone"]


@dataclass
class Mistake:
    """One entry of a solution's mistake catalogue (``<solution stem>.mistakes.toml``)."""

    cell: str  # the id of the TODO cell
    what: str  # the mistake, in a learner's words
    replace: str  # text of the answer ...
    by: str  # ... and what the learner writes instead
    expect: str  # a phrase the first failing check's message must contain (it names the mistake)
    raises: str = ""  # or: the mistaken cell itself stops with this error at the learner's own line,
    # and then ``expect`` is a phrase of the error message the learner sees (it names the mistake)


def catalogue_path(solution: Path) -> Path:
    return Path(solution).with_suffix(".mistakes.toml")


def load_catalogue(solution: Path) -> list[Mistake]:
    path = catalogue_path(solution)
    if not path.exists():
        return []
    with open(path, "rb") as handle:
        return [Mistake(**entry) for entry in tomllib.load(handle).get("mistake", [])]


def with_mistake(source: str, mistake: Mistake) -> str | None:
    """``source`` with the mistake made in its answers (the solution regions; the TODO comment may
    quote the same text), or None unless the text occurs exactly once there."""
    from includes.tools.labs import solution_regions

    lines = source.split("\n")
    regions = solution_regions(source)
    answers = ["\n".join(region.answer) for region in regions]
    if sum(answer.count(mistake.replace) for answer in answers) != 1:
        return None
    (region, answer), = [(r, a) for r, a in zip(regions, answers) if mistake.replace in a]
    stubs = [line for line in lines[region.first + 1:region.last] if line not in region.answer]  # the # LAB: lines
    block = [lines[region.first], *stubs, answer.replace(mistake.replace, mistake.by), lines[region.last]]
    return "\n".join(lines[:region.first] + block + lines[region.last + 1:])


def mistake_probe(kernel, mistake: Mistake, source: str, check_source: str, index: int, check_index: int) -> list[str]:
    """Run TODO cell ``index`` with the mistake made, then its check cell: the first failing check
    must say ``mistake.expect``."""
    name = f"mistake {mistake.what!r} (cell {index})"
    mistaken = with_mistake(source, mistake)
    if mistaken is None:
        return [f"{name}: its text does not occur exactly once in the cell's answers"]
    reply = run_in_kernel(kernel, mistaken)
    if mistake.raises:
        if reply.get("ename") != mistake.raises:
            return [f"{name}: the cell ended with {reply.get('status')} {reply.get('ename', '')}, "
                    f"not {mistake.raises}"]
        message = f"{reply.get('ename')}: {reply.get('evalue', '')}"
        if not mistake.expect or mistake.expect.lower() not in message.lower():
            return [f"{name}: the cell stops with {mistake.raises}, but the message the learner sees does not "
                    f"say {mistake.expect!r}: {_first_line(message)}"]
        return []
    if reply.get("status") != "ok":
        return [f"{name}: the cell itself raised {reply.get('ename')}: {reply.get('evalue', '')}"]
    records, reply = run_check_cell(kernel, check_source)
    failed = [r for r in records if not r["passed"]]
    if not failed:
        return [f"{name}: check cell {check_index} passes it"]
    if mistake.expect.lower() not in failed[0]["message"].lower():
        return [f"{name}: check cell {check_index} fails, but its message does not say {mistake.expect!r}: "
                f"{_first_line(failed[0]['message'])}"]
    return []


_structures: dict[str, object] = {}


def lab_probes(item) -> list[str]:
    """Run the probes due before this nbval cell of a solution notebook; return the problems found.

    Before TODO cell i (regions R1..Rk, check cell c), in nbval's kernel:
    - the lab's cell (every region its ``# LAB:`` stub) must stop with TodoNotDone (the first TODO
      cell) or at least not with another error, and then every check of cell c must fail, the first
      one because of the missing answer;
    - with k > 1, each region alone is stubbed (the other answers stay): cell c must fail, its
      first failing check because of the answer;
    - each mistake of the catalogue for cell i must fail cell c with a message that names it.
    Checks run recording (tests see every check, not only the first that fails).
    """
    from includes.tools.labs import analyse, solution_regions, strip_solution, stub_region

    nb = item.parent.nb
    index = next(i for i, cell in enumerate(nb.cells) if cell is item.cell)
    key = str(item.fspath)
    if key not in _structures:
        _structures[key] = (analyse(nb, Path(key).name), load_catalogue(Path(key)))
    structure, catalogue = _structures[key]
    if index not in structure.todo_cells:
        return []
    kernel = item.parent.kernel
    source = item.cell.source
    check_index = min(c for c in structure.check_cells if c > index)
    check_source = nb.cells[check_index].source
    first = index == structure.todo_cells[0]
    problems = []
    started = time.perf_counter()
    regions = solution_regions(source)
    for number, region in enumerate(regions, start=1):
        if not any("<FILL_IN>" in line for line in region.stub):
            problems.append(f"TODO cell {index}, region {number}: its # LAB: stub has no <FILL_IN>")

    what = f"TODO cell {index} had no answer (the lab's cell)"
    problems += _todo_run_problem(run_in_kernel(kernel, strip_solution(source)), index, "every <FILL_IN>", first)
    records, reply = run_check_cell(kernel, check_source)
    problems += verdict(records, reply, check_index, what, every=True)
    if len(regions) > 1:
        for number in range(len(regions)):
            what = f"region {number + 1} of TODO cell {index} had no answer"
            reply = run_in_kernel(kernel, stub_region(source, number))
            problems += _todo_run_problem(reply, index, f"region {number + 1} stubbed", False)
            records, reply = run_check_cell(kernel, check_source)
            problems += verdict(records, reply, check_index, what)
    item.user_properties.append((PROBE_PROPERTY, ("stubs", time.perf_counter() - started)))
    for mistake in catalogue:
        if mistake.cell == item.cell.get("id"):
            started = time.perf_counter()
            problems += mistake_probe(kernel, mistake, source, check_source, index, check_index)
            item.user_properties.append((PROBE_PROPERTY, (f"cell {index}: {mistake.what}", time.perf_counter() - started)))
    return problems


def _is_solution_cell(item) -> bool:
    return type(item).__name__ == "IPyNbCell" and Path(str(item.fspath)).parent.name == "solutions"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    problems = lab_probes(item) if _is_solution_cell(item) else []
    result = yield
    if problems:
        raise AssertionError("lab probe: " + "\n".join(problems))
    if _cluster is not None and _on_cluster(item):
        problems = cluster_problems(item)
        if problems:
            raise AssertionError("\n".join(problems))
    return result


# --- lessons on a real cluster ------------------------------------------------------------------

CLUSTER_INI = "course_cluster_notebooks"
_cluster = None  # this process's LocalCluster, started for its first listed notebook


def pytest_addoption(parser):
    parser.addini(CLUSTER_INI, "notebooks nbval runs on a standalone cluster the plugin starts", type="linelist",
                  default=[])


def _cluster_paths(config) -> frozenset:
    """The resolved paths of the notebooks ``course_cluster_notebooks`` lists (read once per run)."""
    paths = getattr(config, "_course_cluster_paths", None)
    if paths is None:
        root = Path(str(config.rootpath))
        paths = frozenset((root / listed).resolve() for listed in config.getini(CLUSTER_INI))
        config._course_cluster_paths = paths
    return paths


def _on_cluster(item) -> bool:
    return (type(item).__name__ == "IPyNbCell"
            and Path(str(item.fspath)).resolve() in _cluster_paths(item.config))


def _cluster_for():
    global _cluster
    if _cluster is None:
        import atexit

        from includes.tools.cluster import LocalCluster

        _cluster = LocalCluster(cores=2, memory="4g", timeout=180).start()
        atexit.register(_cluster.stop)  # also when the worker dies without pytest_unconfigure
    return _cluster


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item):
    """The kernel of a listed notebook starts (nbval's file set-up) with COURSE_SPARK_MASTER set."""
    if not _on_cluster(item):
        return (yield)
    from includes.runtime.classroom import MASTER_ENV

    before = os.environ.get(MASTER_ENV)
    os.environ[MASTER_ENV] = _cluster_for().url
    try:
        return (yield)
    finally:
        if before is None:
            os.environ.pop(MASTER_ENV, None)
        else:
            os.environ[MASTER_ENV] = before


def cluster_problems(item) -> list[str]:
    """After a listed notebook's set-up cell: it reports the cluster's master, and the master lists
    the lesson's application while it runs."""
    outputs = getattr(item, "test_outputs", None) or []
    text = "".join(o.get("text", "") for o in outputs if isinstance(o, dict))
    if "Classroom ready for " not in text:
        return []
    lesson = text.split("Classroom ready for ", 1)[1].split()[0]
    problems = []
    if f"master {_cluster.url}" not in text:
        problems.append(f"the set-up cell does not report master {_cluster.url}: {_first_line(text)}")
    status = _cluster.status()
    apps = {app["name"] for app in status.get("activeapps", [])}
    if f"course-{lesson}" not in apps:
        problems.append(f"the master at {_cluster.url} does not list course-{lesson} among its running "
                        f"applications: {sorted(apps)}")
    if not any(w.get("state") == "ALIVE" for w in status.get("workers", [])):
        problems.append(f"no worker of {_cluster.url} is alive")
    return [f"on the cluster: {p}" for p in problems]


def pytest_unconfigure(config):
    global _cluster
    if _cluster is not None:
        _cluster.stop()
        _cluster = None


# --- the execution table ---------------------------------------------------------------------

class ExecutionTable:
    def __init__(self):
        self.nbval_seconds: dict[str, float] = defaultdict(float)
        self.runs: dict[str, list[float]] = defaultdict(list)
        self.probes: dict[str, list[tuple[str, float]]] = defaultdict(list)  # lab probes, inside nbval's seconds

    def add(self, report) -> None:
        path = report.nodeid.split("::", 1)[0]
        if path.endswith(".ipynb"):
            self.nbval_seconds[path] += report.duration
        if report.when == "call":
            for name, value in report.user_properties:
                if name == RUN_PROPERTY:
                    notebook, seconds = value
                    self.runs[notebook].append(seconds)
                elif name == PROBE_PROPERTY:
                    what, seconds = value
                    self.probes[path].append((what, seconds))

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

    def probe_lines(self, slowest: int = 5) -> list[str]:
        """Per solution: the seconds its lab probes took (part of its nbval seconds), stubs and
        mistakes apart, and its slowest mistakes."""
        out = []
        for name in sorted(self.probes):
            probes = self.probes[name]
            stubs = sum(seconds for what, seconds in probes if what == "stubs")
            mistakes = [(seconds, what) for what, seconds in probes if what != "stubs"]
            out.append(f"{name:<58} stubs {stubs:6.1f} s, {len(mistakes):>2} mistakes "
                       f"{sum(s for s, _ in mistakes):6.1f} s")
            out += [f"    {seconds:6.1f} s  {what}" for seconds, what in sorted(mistakes, reverse=True)[:slowest]]
        if out:
            total = sum(seconds for probes in self.probes.values() for _, seconds in probes)
            out.append(f"{'all lab probes':<58} {total:6.1f} s")
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
    probe_lines = _table.probe_lines() if _table is not None else []
    if probe_lines:
        terminalreporter.section("lab probes")
        for line in probe_lines:
            terminalreporter.write_line(line)


@pytest.fixture
def notebook_runs(request, tmp_path_factory):
    """``run(path, env=None)`` executes a whole notebook (includes.tools.runner.execute) and records
    it in the execution table. Every test that uses it says in its docstring why nbval's run of
    that notebook is not enough.

    The runs of a test get a work root and an MLflow store of their own (shared by that test's runs
    only): nbval runs the same notebooks on the other worker at the same time, and a lesson starts
    by emptying its working directory, deleting its experiment's runs and its registered models."""
    from includes.paths import WORK_ENV, display_path
    from includes.tools.runner import execute

    root = tmp_path_factory.mktemp("notebook-runs")
    own = {WORK_ENV: str(root / "work"), "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow' / 'mlflow.db'}"}

    def run(path, env=None):
        result = execute(path, env={**(os.environ if env is None else env), **own})
        request.node.user_properties.append((RUN_PROPERTY, (display_path(path), result.seconds)))
        return result

    return run
