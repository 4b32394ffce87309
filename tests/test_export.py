"""Lesson modules are generated from the lesson cells marked #@save: the tool and freshness."""

import ast

import nbformat
import pytest

from includes.tools import export
from includes.tools.export import ExportError, collect, generate, render, split_cell, stale_modules

NOTEBOOKS = export.NOTEBOOKS_DIR


def notebook(path, *sources):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# lesson")] + [nbformat.v4.new_code_cell(s) for s in sources]
    nbformat.write(nb, path)
    return path


def test_generated_modules_are_up_to_date():
    assert stale_modules() == [], "includes/lessons/ is stale: run `make export` (python -m includes.tools.export generate)"


def test_no_lesson_imports_the_module_generated_from_itself():
    """The lesson defines and runs its algorithm in its own cells; importing the generated copy
    back would hide it again."""
    for module, exp in collect().items():
        nb = nbformat.read(exp.notebook, as_version=4)
        for index, cell in enumerate(nb.cells):
            if cell.cell_type == "code" and (f"includes.lessons.{module}" in cell.source
                                             or f"from includes.lessons import {module}" in cell.source):
                pytest.fail(f"{exp.notebook.name} cell {index} imports includes.lessons.{module}, which it generates")


def test_marked_cells_in_order_become_one_module(tmp_path):
    lessons = tmp_path / "lessons"
    lessons.mkdir()
    notebook(tmp_path / "A.ipynb",
             "#@save algo\nimport numpy as np\n\n\ndef double(x):\n    return 2 * np.asarray(x)",
             "print(double(3))",  # runs it: not exported
             "#@save algo\nimport numpy as np\nfrom math import sqrt\n\nROOT2 = sqrt(2)\n\n\ndef scaled(x):\n    return double(x) * ROOT2")
    generate(tmp_path, lessons, tmp_path)
    text = (lessons / "algo.py").read_text()
    assert "A.ipynb" in text and "do not edit" in text and "#@save algo\n" not in text.split('"""', 2)[2]
    assert text.count("import numpy as np") == 1  # each import once, at the top
    assert text.index("def double") < text.index("def scaled") and "print(" not in text
    namespace = {}
    exec(compile(text, "algo.py", "exec"), namespace)
    assert namespace["scaled"](1) == pytest.approx(2 * 2 ** 0.5)
    assert stale_modules(tmp_path, lessons, tmp_path) == []


def test_stale_hand_written_and_orphan_modules_are_reported(tmp_path):
    lessons = tmp_path / "lessons"
    lessons.mkdir()
    path = notebook(tmp_path / "A.ipynb", "#@save algo\ndef f():\n    return 1")
    assert stale_modules(tmp_path, lessons, tmp_path) == ["algo.py: missing (exported by A.ipynb)"]
    generate(tmp_path, lessons, tmp_path)
    nb = nbformat.read(path, as_version=4)
    nb.cells[1].source += " + 1"
    nbformat.write(nb, path)
    assert stale_modules(tmp_path, lessons, tmp_path) == ["algo.py: differs from the cells of A.ipynb"]
    generate(tmp_path, lessons, tmp_path)
    assert "return 1 + 1" in (lessons / "algo.py").read_text()
    (lessons / "algo.py").write_text("# written by hand\n")
    assert stale_modules(tmp_path, lessons, tmp_path) == ["algo.py: written by hand, but A.ipynb exports it"]
    with pytest.raises(ExportError, match="written by hand"):
        generate(tmp_path, lessons, tmp_path)
    (lessons / "algo.py").unlink()
    generate(tmp_path, lessons, tmp_path)
    path.unlink()
    assert stale_modules(tmp_path, lessons, tmp_path) == ["algo.py: generated, but no notebook exports it any more"]
    generate(tmp_path, lessons, tmp_path)
    assert not (lessons / "algo.py").exists()


def test_one_module_one_notebook(tmp_path):
    notebook(tmp_path / "A.ipynb", "#@save algo\nX = 1")
    notebook(tmp_path / "B.ipynb", "#@save algo\nY = 2")
    with pytest.raises(ExportError, match="one notebook"):
        collect(tmp_path)


@pytest.mark.parametrize("code", ["print(1)", "for i in range(3):\n    pass", "f(2)"])
def test_a_marked_cell_holds_definitions_only(code):
    with pytest.raises(ExportError, match="definitions only"):
        split_cell(code, "X.ipynb cell 3")


def test_every_generated_module_parses_and_names_its_notebook():
    for module, exp in collect().items():
        text = render(exp)
        ast.parse(text)
        assert f"{exp.notebook.parent.name}/{exp.notebook.name}" in text.split("\n", 1)[0], module


def test_a_solution_exports_its_answer_and_its_lab_shows_the_stub(tmp_path):
    """A lab solution can export its algorithm (ML16L's NumPy ALS feeds the benchmarks): the module
    holds the solution's code without the lab's markers, stub lines or TODO instructions, and the
    generated lab shows the learner the stub without the marker."""
    from includes.tools.labs import make_lab

    lessons = tmp_path / "lessons"
    lessons.mkdir()
    path = notebook(tmp_path / "L.ipynb",
                    "#@save algo\nimport numpy as np\n\n\ndef double(x):\n"
                    "    # TODO: return twice x as an array\n    # (use NumPy)\n    # BEGIN SOLUTION\n"
                    "    # LAB: return <FILL_IN>\n    return 2 * np.asarray(x)\n    # END SOLUTION")
    generate(tmp_path, lessons, tmp_path)
    text = (lessons / "algo.py").read_text()
    for left_out in ("SOLUTION", "LAB:", "<FILL_IN>", "TODO", "(use NumPy)", "#@save"):
        assert left_out not in text.split('"""', 2)[2], left_out
    namespace = {}
    exec(compile(text, "algo.py", "exec"), namespace)
    assert list(namespace["double"]([1, 2])) == [2, 4]
    lab_cell = make_lab(nbformat.read(path, as_version=4)).cells[1].source
    assert lab_cell.startswith("import numpy as np") and "return <FILL_IN>" in lab_cell
    assert "#@save" not in lab_cell and "2 * np.asarray" not in lab_cell and "# TODO: return twice x" in lab_cell


def test_the_benchmarks_use_the_exported_lab_als():
    """benchmarks/ runs ML16L's NumPy ALS from the module its cells generate, not a copy."""
    exports = collect()
    assert exports["jester_als"].notebook.name == "ML16L_Capstone_Lab_Jester_Jokes.ipynb"
    sources = "\n".join(path.read_text() for path in (export.COURSE_ROOT / "benchmarks").rglob("*.py"))
    assert "includes.lessons.jester_als" in sources
    assert "def solve_side" not in sources and "np.linalg.solve(" not in sources
