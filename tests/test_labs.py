"""Labs are generated from solutions: the generator, freshness, and every lab's checks."""

import nbformat
import pytest

from includes.tools import labs
from includes.tools.labs import LabFormatError, analyse, make_lab, stale_labs, strip_solution

SOLUTIONS = labs.solution_paths()


def code(source, tags=()):
    cell = nbformat.v4.new_code_cell(source)
    if tags:
        cell.metadata["tags"] = list(tags)
    return cell


# --- the generator ---------------------------------------------------------------------------

def test_region_becomes_fill_in_at_its_indentation():
    source = "# TODO: compute x\nif True:\n    # BEGIN SOLUTION\n    x = 41 + 1\n    # END SOLUTION\nprint(x)"
    assert strip_solution(source) == "# TODO: compute x\nif True:\n    <FILL_IN>\nprint(x)"


def test_lab_lines_give_the_stub():
    source = "# BEGIN SOLUTION\n# LAB: df = spark.read.format(<FILL_IN>).load(path)\ndf = spark.read.format('delta').load(path)\n# END SOLUTION"
    assert strip_solution(source) == "df = spark.read.format(<FILL_IN>).load(path)"


def test_several_regions_in_one_cell():
    source = "# BEGIN SOLUTION\na = 1\n# END SOLUTION\nkeep = True\n# BEGIN SOLUTION\nb = 2\n# END SOLUTION"
    assert strip_solution(source) == "<FILL_IN>\nkeep = True\n<FILL_IN>"


@pytest.mark.parametrize(
    "source, message",
    [
        ("# BEGIN SOLUTION\nx = 1", "without END"),
        ("x = 1\n# END SOLUTION", "without BEGIN"),
        ("# BEGIN SOLUTION\n# BEGIN SOLUTION\n# END SOLUTION", "nested"),
    ],
)
def test_malformed_regions_are_reported(source, message):
    with pytest.raises(LabFormatError, match=message):
        strip_solution(source)


def test_every_todo_needs_a_check_cell():
    nb = nbformat.v4.new_notebook()
    nb.cells = [code("# BEGIN SOLUTION\nx = 1\n# END SOLUTION"), code("# BEGIN SOLUTION\ny = 1\n# END SOLUTION")]
    with pytest.raises(LabFormatError, match="no check cell before the next TODO"):
        analyse(nb)
    nb.cells = [code("# BEGIN SOLUTION\nx = 1\n# END SOLUTION")]
    with pytest.raises(LabFormatError, match="not followed by a check cell"):
        analyse(nb)
    nb.cells = [code("x = 1"), code("check('x', lambda: x)", tags=["check"])]
    with pytest.raises(LabFormatError, match="no TODO cell"):
        analyse(nb)


def test_make_lab_clears_outputs_and_keeps_checks():
    nb = nbformat.v4.new_notebook()
    todo = code("# BEGIN SOLUTION\nx = 1\n# END SOLUTION")
    todo.outputs = [nbformat.v4.new_output("stream", name="stdout", text="1\n")]
    todo.execution_count = 3
    check_cell = code("check_equal('x', lambda: x, 1)", tags=["check"])
    nb.cells = [nbformat.v4.new_markdown_cell("# Lab"), todo, check_cell]
    structure = analyse(nb)
    assert (structure.todo_cells, structure.check_cells) == ([1], [2])
    lab = make_lab(nb)
    assert lab.cells[1].source == "<FILL_IN>"
    assert lab.cells[1].outputs == [] and lab.cells[1].execution_count is None
    assert lab.cells[2].source == check_cell.source
    assert nb.cells[1].source.startswith("# BEGIN SOLUTION")  # the solution is untouched


def test_labs_are_up_to_date():
    assert SOLUTIONS, "no solutions/ notebooks"
    assert stale_labs() == [], "labs/ is stale: run `make labs` (python -m includes.tools.labs generate)"


def test_stale_lab_is_detected(tmp_path):
    solutions, lab_dir = tmp_path / "solutions", tmp_path / "labs"
    solutions.mkdir()
    nb = nbformat.v4.new_notebook()
    nb.cells = [code("# BEGIN SOLUTION\nx = 1\n# END SOLUTION"), code("check('x', lambda: x)", tags=["check"])]
    nbformat.write(nb, solutions / "X.ipynb")
    labs.generate(solutions, lab_dir)
    assert stale_labs(solutions, lab_dir) == []
    nb.cells[0].source = "# BEGIN SOLUTION\nx = 2\n# LAB: x = <FILL_IN> + 1\n# END SOLUTION"
    nbformat.write(nb, solutions / "X.ipynb")
    assert stale_labs(solutions, lab_dir) == ["X.ipynb: differs from its solution"]
    (lab_dir / "Orphan.ipynb").write_text("{}")
    assert "Orphan.ipynb: has no solution in solutions/" in stale_labs(solutions, lab_dir)
    labs.generate(solutions, lab_dir)
    assert stale_labs(solutions, lab_dir) == []
    assert not (lab_dir / "Orphan.ipynb").exists()


def test_placeholder_transformer():
    from includes.runtime.checks import replace_placeholders

    assert replace_placeholders(["x = <FILL_IN>\n", "f(<FILL_IN>, 2)\n"]) == [
        "x = __course_fill_in__()\n",
        "f(__course_fill_in__(), 2)\n",
    ]


# --- every real lab ----------------------------------------------------------------------------
# Executing the labs is part of nbval's run of their solutions (tests/course_plugin.py): the lab's
# first TODO cell must stop with TodoNotDone, and every check cell must fail without its answer.


@pytest.mark.parametrize("solution", SOLUTIONS, ids=lambda p: p.stem)
def test_lab_before_its_first_todo_is_the_solution_unchanged(solution):
    """What makes the in-kernel probe a proof for the lab: up to its first TODO, the lab is the
    solution's cells (which nbval runs without error), and that TODO cell holds a <FILL_IN>."""
    solution_nb = nbformat.read(solution, as_version=4)
    lab_nb = nbformat.read(labs.LABS_DIR / solution.name, as_version=4)
    first_todo = analyse(solution_nb, solution.name).todo_cells[0]
    for index in range(first_todo):
        ours, theirs = lab_nb.cells[index], solution_nb.cells[index]
        assert (ours.cell_type, ours.source) == (theirs.cell_type, theirs.source), f"cell {index} differs"
    assert "<FILL_IN>" in lab_nb.cells[first_todo].source


@pytest.mark.parametrize("solution", SOLUTIONS, ids=lambda p: p.stem)
def test_check_cells_are_locked_in_the_lab(solution):
    lab_nb = nbformat.read(labs.LABS_DIR / solution.name, as_version=4)
    checks = [cell for cell in lab_nb.cells if labs.is_check(cell)]
    assert checks
    for cell in checks:
        assert cell.metadata.get("editable") is False and cell.metadata.get("deletable") is False


def test_generate_one_writes_only_that_lab(tmp_path):
    solutions, lab_dir = tmp_path / "solutions", tmp_path / "labs"
    solutions.mkdir()
    for name in ("A", "B"):
        nb = nbformat.v4.new_notebook()
        nb.cells = [code(f"# BEGIN SOLUTION\n{name.lower()} = 1\n# END SOLUTION"),
                    code("check('x', lambda: x)", tags=["check"])]
        nbformat.write(nb, solutions / f"{name}.ipynb")
    written = labs.generate_one(solutions / "A.ipynb", lab_dir)
    assert written == lab_dir / "A.ipynb" and "<FILL_IN>" in written.read_text()
    assert sorted(p.name for p in lab_dir.iterdir()) == ["A.ipynb"]
    assert stale_labs(solutions, lab_dir) == ["B.ipynb: missing in labs/"]


def test_regions_and_one_region_stubbed():
    from includes.tools.labs import solution_regions, stub_region

    source = ("a = 0\n# BEGIN SOLUTION\n# LAB: x = <FILL_IN>\nx = 1\n# END SOLUTION\n"
              "if a == 0:\n    # BEGIN SOLUTION\n    y = 2\n    # END SOLUTION")
    first, second = solution_regions(source)
    assert (first.answer, first.stub) == (["x = 1"], ["x = <FILL_IN>"])
    assert (second.answer, second.stub) == (["    y = 2"], ["    <FILL_IN>"])
    assert stub_region(source, 1) == ("a = 0\n# BEGIN SOLUTION\n# LAB: x = <FILL_IN>\nx = 1\n# END SOLUTION\n"
                                      "if a == 0:\n    <FILL_IN>")
    assert stub_region(source, 0).startswith("a = 0\nx = <FILL_IN>\nif a == 0:")


@pytest.mark.parametrize("solution", SOLUTIONS, ids=lambda p: p.stem)
def test_every_stub_holds_a_fill_in(solution):
    """A `# LAB:` stub without <FILL_IN> would hand the learner a cell that runs: the TODO must stop."""
    from includes.tools.labs import solution_regions

    nb = nbformat.read(solution, as_version=4)
    for index in analyse(nb, solution.name).todo_cells:
        for number, region in enumerate(solution_regions(nb.cells[index].source), start=1):
            assert any("<FILL_IN>" in line for line in region.stub), f"cell {index}, region {number}"


# --- make progress ------------------------------------------------------------------------------

def test_progress_runs_each_lab_and_reports_every_check(tmp_path):
    """Three small labs in a collected folder (no Spark): one answer right, one wrong, one TODO left;
    a lab whose set-up cell fails; a lab that runs out of time."""
    from pathlib import Path

    from includes.runtime.checks import plain
    from includes.tools import progress

    root = Path(__file__).resolve().parent.parent
    setup = (f"import sys; sys.path.insert(0, {str(root)!r})\n"
             "from includes.runtime.checks import check, check_equal, enable_fill_in\nenable_fill_in()")

    def lab(name, *cells, first=setup):
        nb = nbformat.v4.new_notebook(cells=[code(first)] + [code(c[1:], tags=["check"]) if c.startswith("!")
                                                           else code(c) for c in cells])
        nbformat.write(nb, tmp_path / f"{name}.ipynb")

    lab("A_started", "x = 42", "!check_equal('x is 42', lambda: x, 42)",
        "y = 41", "!check_equal('y is 42', lambda: y, 42, hint='count again')\ncheck('y is even', lambda: y % 2 == 0)",
        "z = <FILL_IN>", "!check_equal('z is 1', lambda: z, 1)")
    lab("B_broken", "x = <FILL_IN>", "!check('x', lambda: x)", first=setup + "\nraise RuntimeError('no Java here')")
    lab("C_slow", "import time; time.sleep(30)", "!check('x', lambda: x)")
    assert progress.todo_cells(nbformat.v4.new_notebook(cells=[
        code("# BEGIN SOLUTION\n# LAB: x = <FILL_IN>\nx = 1\n# END SOLUTION"), code("y = <FILL_IN>  # yours")])) == [1]

    started, broken, slow = (progress.run_lab(tmp_path / f"{n}.ipynb", lab_timeout=8, cell_timeout=5)
                             for n in ("A_started", "B_broken", "C_slow"))
    assert (started.passed, started.failed, started.todos_left, started.problem) == (1, 3, 1, "")
    assert started.first_failure.splitlines() == ["FAIL: y is 42", "  expected 42, got 41.", "  Hint: count again"]
    assert broken.problem == "its set-up cell failed: RuntimeError: no Java here" and broken.todos_left == 1
    assert slow.problem and "time limit" in slow.problem
    text = progress.table([started, broken, slow], colour=True)
    rows = plain(text).splitlines()
    assert rows[1].split()[:5] == ["A_started", "1", "3", "1", "FAIL"]
    assert "first failure: FAIL: y is 42" in rows[2] and "Hint: count again" in rows[4]
    assert "B_broken" in rows[5] and "could not run: its set-up cell failed" in rows[5]
    assert "C_slow" in rows[6] and "could not run" in rows[6]
    assert "\x1b[31m" in text and "\x1b[32m" in text  # FAIL red, passes green in a terminal
    assert "\x1b[" not in progress.table([started], colour=False)


def test_progress_of_a_folder_exits_0_only_when_all_pass(tmp_path, capsys):
    from pathlib import Path

    from includes.tools import progress

    root = Path(__file__).resolve().parent.parent
    setup = f"import sys; sys.path.insert(0, {str(root)!r})\nfrom includes.runtime.checks import check_equal"
    nb = nbformat.v4.new_notebook(cells=[code(setup), code("x = 1"), code("check_equal('x', lambda: x, 1)", tags=["check"])])
    nbformat.write(nb, tmp_path / "Done.ipynb")
    assert progress.main([str(tmp_path), "--colour", "never"]) == 0
    out = capsys.readouterr().out
    assert "Done" in out and "PASS" in out and "1 labs: 1 checks passed, 0 failed, 0 TODOs left" in out
    assert progress.main([str(tmp_path / "empty")]) == 1


# --- the mistake catalogues (solutions/<stem>.mistakes.toml, run by tests/course_plugin.py) ------

@pytest.mark.parametrize("solution", SOLUTIONS, ids=lambda p: p.stem)
def test_each_catalogued_mistake_edits_one_answer_of_a_todo_cell(solution):
    """What the in-kernel mistake probe relies on: the mistake names a TODO cell by id, its text
    occurs once in that cell, inside a solution region, and changes it."""
    from tests.course_plugin import load_catalogue, with_mistake

    nb = nbformat.read(solution, as_version=4)
    todos = {nb.cells[i].get("id"): nb.cells[i] for i in analyse(nb, solution.name).todo_cells}
    for mistake in load_catalogue(solution):
        assert mistake.cell in todos, f"{mistake.what}: {mistake.cell} is not a TODO cell"
        mistaken = with_mistake(todos[mistake.cell].source, mistake)
        assert mistaken is not None, f"{mistake.what}: not exactly once in the cell's answers"
        assert mistaken != todos[mistake.cell].source, mistake.what
        assert mistake.expect or mistake.raises, f"{mistake.what}: says neither expect nor raises"


def test_a_mistake_is_made_in_the_answer_not_in_the_todo_comment():
    from tests.course_plugin import Mistake, with_mistake

    source = "# TODO: x = f(1)\n# BEGIN SOLUTION\n# LAB: x = f(1) + <FILL_IN>\nx = f(1)\n# END SOLUTION\nprint(x)"
    made = with_mistake(source, Mistake(cell="c", what="w", replace="x = f(1)", by="x = f(2)", expect="e"))
    assert made == "# TODO: x = f(1)\n# BEGIN SOLUTION\n# LAB: x = f(1) + <FILL_IN>\nx = f(2)\n# END SOLUTION\nprint(x)"
    assert with_mistake(source, Mistake(cell="c", what="w", replace="print(x)", by="", expect="e")) is None


def test_catalogue_coverage():
    """Every TODO cell of a catalogued lab has mistakes, at least two unless the catalogue's
    header explains why not (a mistaken run too slow for the suite, or leaving state behind)."""
    from tests.course_plugin import catalogue_path, load_catalogue

    for solution in SOLUTIONS:
        if not catalogue_path(solution).exists():
            continue
        nb = nbformat.read(solution, as_version=4)
        header = catalogue_path(solution).read_text().split("[[mistake]]")[0]
        counts = {nb.cells[i].get("id"): 0 for i in analyse(nb, solution.name).todo_cells}
        for mistake in load_catalogue(solution):
            counts[mistake.cell] += 1
        for cell, count in counts.items():
            assert count >= 2 or cell in header, f"{solution.name}: TODO cell {cell} has {count} mistakes"


@pytest.mark.parametrize("solution", SOLUTIONS, ids=lambda p: p.stem)
def test_no_stub_puts_fill_in_after_a_dot(solution):
    """`df.<FILL_IN>` becomes `df.__course_fill_in__()`: an attribute lookup that fails with the
    object's own error (PySparkAttributeError naming __course_fill_in__), not TodoNotDone."""
    import re

    from includes.tools.labs import solution_regions

    nb = nbformat.read(solution, as_version=4)
    for index in analyse(nb, solution.name).todo_cells:
        for region in solution_regions(nb.cells[index].source):
            assert not any(re.search(r"\.\s*<FILL_IN>", line) for line in region.stub), f"cell {index}"


@pytest.mark.parametrize("stem, api, names", [
    ("ML14L_Pandas_UDF_Lab", ".applyInPandas(", ["schema", "returns exactly the schema's columns",
                                                 "not one model fitted on every room type", "group by room_type"]),
    ("ML09L_Hyperopt_Lab", "algo=tpe.suggest", ["tpe.suggest", "seeded with 42", "max_evals", "lowest loss"]),
])
def test_day_four_labs_practise_what_day_four_taught(stem, api, names):
    """Issue 21, point 4: ML14L trains and scores per group with applyInPandas, ML09L runs Hyperopt's
    TPE, each in a TODO answer (not given code), with catalogued mistakes that its checks name."""
    from includes.tools.labs import solution_regions
    from tests.course_plugin import load_catalogue

    solution = next(path for path in SOLUTIONS if path.stem == stem)
    nb = nbformat.read(solution, as_version=4)
    cells = [nb.cells[i] for i in analyse(nb, solution.name).todo_cells
             if any(api in "\n".join(region.answer) for region in solution_regions(nb.cells[i].source))]
    assert len(cells) == 1, f"{stem}: no TODO answer uses {api}"
    expected = {mistake.expect for mistake in load_catalogue(solution) if mistake.cell == cells[0].get("id")}
    assert set(names) <= expected, f"{stem}: the catalogue of the {api} cell names {sorted(expected)}"
