"""tests/course_plugin.py for real: nbval runs tiny solution notebooks with the lab probes on.

A solution whose check catches a missing answer passes; one whose check passes without the
answer, or whose lab does not stop at its first TODO, fails with the reason; the execution table
is printed. Each run is a pytest subprocess on notebooks written here (seconds, no Spark).
"""

import os
import subprocess
import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent
SETUP = (f"import sys; sys.path.insert(0, {str(ROOT)!r})\n"
         "from includes.runtime.checks import check_equal, enable_fill_in\nenable_fill_in()")


def solution(path: Path, answer: str, check: str) -> None:
    cells = [nbformat.v4.new_code_cell(SETUP),
             nbformat.v4.new_code_cell(f"# TODO: x is 42\n# BEGIN SOLUTION\n{answer}\n# END SOLUTION"),
             nbformat.v4.new_code_cell(check)]
    cells[2].metadata["tags"] = ["check"]
    nb = nbformat.v4.new_notebook(cells=cells)
    NotebookClient(nb, kernel_name="python3", timeout=60).execute()
    nbformat.write(nb, path)


def run_suite(project: Path) -> subprocess.CompletedProcess:
    (project / "pytest.ini").write_text("[pytest]\naddopts = -p no:cacheprovider -p tests.course_plugin\n")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "pytest", "--nbval", "solutions", "-q", "-rf"],
                          cwd=project, env=env, capture_output=True, text=True, timeout=300)


def test_probes_pass_a_good_lab_and_fail_bad_ones(tmp_path):
    (tmp_path / "solutions").mkdir()
    good = "check_equal('x', lambda: x, 42)"
    solution(tmp_path / "solutions" / "Good.ipynb", "x = 42", good)
    solution(tmp_path / "solutions" / "Lenient.ipynb", "x = 42", "check_equal('True', lambda: True, True)")
    solution(tmp_path / "solutions" / "NoStop.ipynb", "x = 42\n# LAB: x = 41", good)
    proc = run_suite(tmp_path)
    out = proc.stdout
    assert "2 failed, 7 passed" in out, out[-3000:]
    assert "Lenient.ipynb::Cell 1" in out and "check cell 2 passed although TODO cell 1 had no answer" in out
    assert "NoStop.ipynb::Cell 1" in out and "not TodoNotDone" in out
    assert "Good.ipynb" not in out.split("short test summary")[-1]
    table = out.split("notebook executions")[-1]
    assert "solutions/Good.ipynb" in table and "all notebooks" in table and "   3 " in table
