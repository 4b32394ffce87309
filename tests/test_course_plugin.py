"""tests/course_plugin.py for real: nbval runs tiny solution notebooks with the lab probes on.

Each lab below is built to slip through one gap of the old probes (all answers removed at once,
only the first failing check seen, any exception taken for a catch, `pass` probed instead of the
lab's stub, a stub without <FILL_IN>); the probes must now fail it with the reason. A good lab,
with a mistake catalogue its checks catch, passes; the execution table is printed. Each run is a
pytest subprocess on notebooks written here (seconds, no Spark).
"""

import os
import socket
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent
SETUP = (f"import sys; sys.path.insert(0, {str(ROOT)!r})\n"
         "from includes.runtime.checks import check, check_equal, enable_fill_in\nenable_fill_in()")


def solution(path: Path, *cells: str) -> None:
    """A solution notebook: the set-up cell, then ``cells``; a cell starting with ``#check`` is a check cell."""
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(SETUP)])
    for number, source in enumerate(cells, start=1):
        cell = nbformat.v4.new_code_cell(source)
        cell.id = f"cell-{number:02d}"
        if source.startswith("#check"):
            cell.metadata["tags"] = ["check"]
        nb.cells.append(cell)
    NotebookClient(nb, kernel_name="python3", timeout=60).execute()
    nbformat.write(nb, path)


def todo(*answers: str) -> str:
    return "\n".join(f"# BEGIN SOLUTION\n{answer}\n# END SOLUTION" for answer in answers)


def run_suite(project: Path) -> subprocess.CompletedProcess:
    (project / "pytest.ini").write_text("[pytest]\naddopts = -p no:cacheprovider -p tests.course_plugin\n")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "pytest", "--nbval", "solutions", "-q", "-rf"],
                          cwd=project, env=env, capture_output=True, text=True, timeout=300)


CHECK_X = "#check\ncheck_equal('x is 42', lambda: x, 42, hint='count again')"
A_STRING = '''
[[mistake]]
cell = "cell-01"
what = "a string"
replace = "x = 42"
by = "x = '42'"
expect = "{expect}"
'''
# a mistake Python refuses at the learner's own line; the probe reads the error's message
SPELLED_OUT = '''
[[mistake]]
cell = "cell-01"
what = "the number spelled out"
replace = "x = 42"
by = "x = int('forty-two')"
raises = "ValueError"
expect = "{expect}"
'''
GOOD_CATALOGUE = '''
[[mistake]]
cell = "cell-01"
what = "one short"
replace = "x = 42"
by = "x = 41"
expect = "x is 42"
''' + A_STRING.format(expect="expected 42") + SPELLED_OUT.format(expect="invalid literal for int()")
SLIPPING_CATALOGUE = '''
[[mistake]]
cell = "cell-01"
what = "the same value written differently"
replace = "x = 42"
by = "x = 6 * 7"
expect = "x is 42"
''' + A_STRING.format(expect="the mistake named otherwise") + SPELLED_OUT.format(expect="forty-three")


def failures(out: str) -> dict[str, str]:
    """The failing notebooks' lab-probe messages, by notebook name."""
    found = {}
    for block in out.split("___ ")[1:]:
        name = re.match(r"(\w+)\.ipynb", block.split("::")[0].strip("_ ").split("/")[-1])
        if name and "lab probe:" in block:
            found[name.group(1)] = found.get(name.group(1), "") + block
    return found


def test_probes_pass_a_good_lab_and_fail_each_gap(tmp_path):
    solutions = tmp_path / "solutions"
    solutions.mkdir()
    solution(solutions / "Good.ipynb", todo("x = 42"), CHECK_X,
             "y = 1", todo("# LAB: z = <FILL_IN> + y\nz = 2 + y"), "#check\ncheck_equal('z is 3', lambda: z, 3)")
    (solutions / "Good.mistakes.toml").write_text(GOOD_CATALOGUE)
    solution(solutions / "Lenient.ipynb", todo("x = 42"), "#check\ncheck_equal('True', lambda: True, True)")
    solution(solutions / "NoStop.ipynb", todo("x = 42\n# LAB: x = 41"), CHECK_X)
    # gap: all answers removed at once; the second answer has no check
    solution(solutions / "Unchecked.ipynb", todo("x = 42", "w = 7"), CHECK_X)
    # gap: only the first failing check was run; the second passes without any answer
    solution(solutions / "Idle.ipynb", todo("x = 42"), CHECK_X + "\ncheck('always', lambda: 1 + 1 == 2)")
    # gap: any exception was a catch; here the stale `grid` of an earlier cell makes checking raise
    solution(solutions / "Unrelated.ipynb", "grid = 5", todo("grid = [1, 2]"),
             "#check\ncheck_equal('grid has 2 points', lambda: len(grid), 2)")
    # gap: later TODOs probed with `pass`; their stubs are what the learner gets
    solution(solutions / "BadStubs.ipynb", todo("x = 42"), CHECK_X,
             todo("# LAB: y = 41\ny = 42"), "#check\ncheck_equal('y is 42', lambda: y, 42)",
             todo("# LAB: z = not_defined_in_the_lab + <FILL_IN>\nz = 1"), "#check\ncheck_equal('z', lambda: z, 1)")
    # a check cell whose own code raises before any check has failed
    solution(solutions / "RawError.ipynb", todo("x = 42"), "#check\ndouble = x * 2\ncheck_equal('x', lambda: x, 42)")
    solution(solutions / "Slipping.ipynb", todo("x = 42"), CHECK_X)
    (solutions / "Slipping.mistakes.toml").write_text(SLIPPING_CATALOGUE)

    out = run_suite(tmp_path).stdout
    found = failures(out)
    assert sorted(found) == ["BadStubs", "Idle", "Lenient", "NoStop", "RawError", "Slipping", "Unchecked",
                             "Unrelated"], out[-4000:]
    assert "check cell 2 passed although TODO cell 1 had no answer" in found["Lenient"]
    assert "not TodoNotDone" in found["NoStop"]
    assert "check cell 2 passed although region 2 of TODO cell 1 had no answer" in found["Unchecked"]
    assert "'always' passes although TODO cell 1 had no answer" in found["Idle"]
    assert "failed on an unrelated error" in found["Unrelated"] and "TypeError" in found["Unrelated"]
    assert "TODO cell 3, region 1: its # LAB: stub has no <FILL_IN>" in found["BadStubs"]
    assert "ended with error NameError" in found["BadStubs"]
    assert "raised NameError outside its checks" in found["RawError"]
    assert "'the same value written differently' (cell 1): check cell 2 passes it" in found["Slipping"]
    assert "does not say 'the mistake named otherwise'" in found["Slipping"]
    assert ("'the number spelled out' (cell 1): the cell stops with ValueError, but the message the learner "
            "sees does not say 'forty-three': ValueError: invalid literal") in found["Slipping"]
    table = out.split("notebook executions")[-1].split("= lab probes =")[0]
    assert "solutions/Good.ipynb" in table and "all notebooks" in table
    probes = out.split("= lab probes =")[-1]  # the probe table: each solution's stub and mistake seconds
    assert re.search(r"solutions/Good\.ipynb\s+stubs\s+[\d.]+ s,\s+\d+ mistakes\s+[\d.]+ s", probes), probes
    assert "all lab probes" in probes


def classroom(lesson: str, master: str = "master") -> str:
    """A set-up cell like the classroom's: it prints the lesson and ``master`` (an expression), and
    writes the master its kernel was given to a file master-<pid>."""
    return ("import os\nmaster = os.environ.get('COURSE_SPARK_MASTER', 'local[*]')\n"
            "_ = open(f'master-{os.getpid()}', 'w').write(master)\n"
            f"print(f'Classroom ready for {lesson}\\n  spark        : Apache Spark with Delta Lake, master {{{master}}}')")


def lesson(path: Path, *cells: str) -> None:
    """A lesson notebook: ``cells`` executed here (on local[*], as `make outputs` stores them)."""
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source) for source in cells])
    NotebookClient(nb, kernel_name="python3", timeout=60, resources={"metadata": {"path": str(path.parent)}}).execute()
    nbformat.write(nb, path)


@pytest.mark.cluster
def test_listed_notebooks_run_on_a_cluster_that_is_gone_afterwards(tmp_path):
    """pytest.ini's course_cluster_notebooks: the plugin starts a real standalone master and worker,
    the listed notebooks' kernels get COURSE_SPARK_MASTER, the set-up cell's master URL is
    sanitised against the stored local[*], and the checks after the set-up cell can fail: a kernel
    that reports another master, a lesson whose application the master does not list (these tiny
    lessons start no Spark session). A notebook that is not listed runs on local[*]. After the run,
    with a failing cell among them, no process of the cluster and no scratch folder is left."""
    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    lesson(notebooks / "NoApp.ipynb", classroom("NoApp"), "1 + 1")
    lesson(notebooks / "Elsewhere.ipynb", classroom("Elsewhere", master='"local[*]"'))
    lesson(notebooks / "Fails.ipynb", classroom("Fails").split("\nprint(")[0], "2 + 2")
    nb = nbformat.read(notebooks / "Fails.ipynb", as_version=4)
    nb.cells[1].source = "raise RuntimeError('a cell fails')"
    nbformat.write(nb, notebooks / "Fails.ipynb")
    lesson(notebooks / "Local.ipynb", classroom("Local"))
    for stale in notebooks.glob("master-*"):
        stale.unlink()
    (tmp_path / "pytest.ini").write_text(
        "[pytest]\naddopts = -p no:cacheprovider -p tests.course_plugin\n"
        "course_cluster_notebooks =\n    notebooks/NoApp.ipynb\n    notebooks/Elsewhere.ipynb\n    notebooks/Fails.ipynb\n")
    scratch = tmp_path / "tmp"  # where the cluster makes its scratch folder (tempfile follows TMPDIR)
    scratch.mkdir()
    env = dict(os.environ, PYTHONPATH=str(ROOT), TMPDIR=str(scratch))
    env.pop("COURSE_SPARK_MASTER", None)
    out = subprocess.run([sys.executable, "-m", "pytest", "--nbval", "notebooks", "-q", "-rf",
                          "--nbval-sanitize-with", str(ROOT / "tests" / "nbval_sanitize.cfg")],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600).stdout
    masters = {path.read_text() for path in notebooks.glob("master-*")}
    cluster = sorted(m for m in masters if m.startswith("spark://"))
    assert masters == {"local[*]", *cluster} and len(cluster) == 1, masters  # Local.ipynb and the three listed
    url = cluster[0]
    failed = set(re.findall(r"FAILED notebooks/(\w+\.ipynb::Cell \d)", out))
    assert failed == {"NoApp.ipynb::Cell 0", "Elsewhere.ipynb::Cell 0", "Fails.ipynb::Cell 1"}, out[-3000:]
    assert f"on the cluster: the master at {url} does not list course-NoApp among its running applications" in out
    assert f"on the cluster: the set-up cell does not report master {url}" in out
    assert "3 failed, 3 passed" in out, out[-3000:]
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    assert url not in ps, "a process of the cluster is still running"
    port = int(url.rsplit(":", 1)[1])
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=2)
    assert not list(scratch.glob("course-cluster-*")), "the cluster's scratch folder is still there"
