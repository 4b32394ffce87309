import pytest

from includes.runtime.checks import LabCheckError, TodoNotDone, check, check_equal, fill_in


def test_check_passes_and_says_so(capsys):
    check("two plus two", lambda: 2 + 2 == 4)
    assert capsys.readouterr().out == "PASS: two plus two\n"


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
