import pytest

from includes.runtime.checks import LabCheckError, TodoNotDone, check, check_equal, fill_in
from includes.runtime.checks import plain as _plain


def test_check_passes_and_says_so(capsys):
    check("two plus two", lambda: 2 + 2 == 4)
    assert _plain(capsys.readouterr().out) == "PASS: two plus two\n"


def test_check_fails_with_description_and_hint():
    with pytest.raises(LabCheckError) as err:
        check("the table has rows", lambda: 0, hint="append the rows first")
    assert "FAIL: the table has rows" in str(err.value)
    assert "Hint: append the rows first" in str(err.value)


def test_undefined_name_becomes_a_helpful_failure():
    with pytest.raises(LabCheckError) as err:
        check_equal("answer is 42", lambda: eval("undefined_answer"), 42)
    assert "undefined_answer" in str(err.value)
    assert "Run the TODO cell above first" in str(err.value)


def test_fill_in_left_in_place_becomes_a_helpful_failure():
    with pytest.raises(LabCheckError, match="still has <FILL_IN>"):
        check("done", lambda: fill_in())


def test_other_errors_are_reported_not_raised_raw():
    with pytest.raises(LabCheckError, match="ZeroDivisionError"):
        check_equal("ratio", lambda: 1 / 0, 1.0)


def test_check_equal_shows_expected_and_actual():
    with pytest.raises(LabCheckError) as err:
        check_equal("row count", lambda: 7000, 7146)
    assert "expected 7146, got 7000" in str(err.value)


def test_check_equal_with_tolerance(capsys):
    check_equal("rmse", lambda: 0.9464, 0.946, tol=0.001)
    with pytest.raises(LabCheckError, match=r"within 0.001"):
        check_equal("rmse", lambda: 0.95, 0.946, tol=0.001)
    with pytest.raises(LabCheckError):
        check_equal("rmse", lambda: "not a number", 0.946, tol=0.001)


def test_plain_values_work_too(capsys):
    check_equal("plain", 3, 3)
    check("plain bool", True)
    assert capsys.readouterr().out.count("PASS") == 2


def test_fill_in_raises_todo_not_done():
    with pytest.raises(TodoNotDone, match="replace every <FILL_IN>"):
        fill_in()


# --- what the learner sees (issue 26) ------------------------------------------------------------

import re as _re

from includes.runtime import checks as _checks


def test_pass_is_green_and_fail_is_red(capsys):
    check("green", True)
    out = capsys.readouterr().out
    assert out.startswith(_checks.PASS_MARK) and _checks.plain(out) == "PASS: green\n"
    with pytest.raises(LabCheckError) as err:
        check_equal("red", 1, 2, hint="look at x")
    lines = err.value._render_traceback_()
    assert lines[0].startswith(_checks.FAIL_MARK)
    assert [_checks.plain(line) for line in lines] == ["FAIL: red", "  expected 2, got 1.", "  Hint: look at x"]


def test_todo_renders_as_one_line_without_the_rewrite():
    with pytest.raises(TodoNotDone) as err:
        fill_in()
    (line,) = err.value._render_traceback_()
    assert _checks.plain(line) == "TodoNotDone: " + _checks.TODO_MESSAGE
    assert "__course_fill_in__" not in line and "checks.py" not in line


def test_a_string_is_not_a_number_even_within_a_tolerance():
    with pytest.raises(LabCheckError, match="expected 1.0"):
        check_equal("x", lambda: "1.0", 1.0, tol=0.5)


@pytest.mark.parametrize("value, kind", [
    (lambda: 1, "mismatch"), (lambda: eval("no_such_name"), "undefined"), (fill_in, "todo"), (lambda: [][1], "error"),
])
def test_failures_have_a_kind(value, kind):
    with pytest.raises(LabCheckError) as err:
        check_equal("x", value, 2)
    assert err.value.kind == kind


def test_recording_runs_every_check_and_raises_nothing(capsys):
    _checks.start_recording()
    try:
        check("one", False, hint="h")
        check_equal("two", 2, 2)
        check_equal("three", lambda: [][0], 3)
    finally:
        records = _checks.stop_recording()
    assert [(r["description"], r["passed"], r["kind"]) for r in records] == [
        ("one", False, "mismatch"), ("two", True, None), ("three", False, "error")]
    assert "Hint: h" in records[0]["message"] and capsys.readouterr().out == ""
    check("after recording", True)  # back to normal
    assert "PASS" in capsys.readouterr().out


def _run_notebook(cells):
    import nbformat
    from nbclient import NotebookClient

    setup = ("from includes.runtime.checks import check_equal, enable_fill_in\nenable_fill_in()")
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(setup)]
                                  + [nbformat.v4.new_code_cell(c) for c in cells])
    NotebookClient(nb, kernel_name="python3", timeout=60, allow_errors=True,
                   resources={"metadata": {"path": str(_checks.__file__).rsplit("/includes/", 1)[0]}}).execute()
    return nb


def test_in_a_kernel_the_learner_sees_messages_not_course_tracebacks():
    """A real kernel: TODO, wrong answer, right answer, and an error in the learner's own code; then
    the same notebook as nbconvert's static HTML, where PASS and FAIL carry different colours."""
    from nbconvert import HTMLExporter

    nb = _run_notebook(["x = <FILL_IN>",
                        "check_equal('x is 42', lambda: 41, 42, hint='count again')",
                        "check_equal('x is 42', lambda: 42, 42)",
                        "def mine():\n    return 1 / 0\nmine()"])
    todo, wrong, right, own = (cell.outputs for cell in nb.cells[1:])
    for outputs in (todo, wrong):
        (error,) = outputs
        shown = "\n".join(error["traceback"])
        assert "checks.py" not in shown and "__course_fill_in__" not in shown and "Traceback" not in shown
    assert _checks.plain(todo[0]["traceback"][0]).startswith("TodoNotDone: This cell is a TODO")
    assert [_checks.plain(line) for line in wrong[0]["traceback"]] == [
        "FAIL: x is 42", "  expected 42, got 41.", "  Hint: count again"]
    assert _checks.plain(right[0]["text"]) == "PASS: x is 42\n"
    own_shown = _checks.plain("\n".join(own[0]["traceback"]))
    assert "ZeroDivisionError" in own_shown and "return 1 / 0" in own_shown  # the learner's line, as usual
    html, _ = HTMLExporter().from_notebook_node(nb)
    assert _re.search(r'<span class="[^"]*ansi-green[^"]*">PASS</span>', html)
    assert _re.search(r'<span class="[^"]*ansi-red[^"]*">FAIL</span>', html)
    assert "__course_fill_in__" not in html


def test_the_course_site_colours_pass_and_fail_too():
    """The static site (make site: Jupyter Book, myst-nb) renders stored stream outputs with
    myst-nb's ANSI lexer: PASS comes out green, FAIL red."""
    from myst_nb.core.lexers import AnsiColorLexer
    from pygments import highlight
    from pygments.formatters import HtmlFormatter

    html = highlight(f"{_checks.PASS_MARK}: x\n{_checks.FAIL_MARK}: y\n", AnsiColorLexer(), HtmlFormatter())
    assert _re.search(r'<span class="[^"]*Green[^"]*">PASS</span>', html)
    assert _re.search(r'<span class="[^"]*Red[^"]*">FAIL</span>', html)
