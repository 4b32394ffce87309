"""Lab checks: the check cells' functions and the ``<FILL_IN>`` placeholder at run time.

A check cell calls :func:`check` or :func:`check_equal`; both print ``PASS: ...`` when the
learner's answer is right and raise :class:`LabCheckError` with what was expected and a hint
when it is not. The value under test is given as a function (usually a lambda) so that a
name the learner has not defined yet becomes a helpful message instead of a NameError.
"""

from __future__ import annotations

import math
from typing import Any, Callable


class LabCheckError(AssertionError):
    """A lab answer is not right yet; the message says what was expected."""


class TodoNotDone(NotImplementedError):
    """Raised by a ``<FILL_IN>`` placeholder that is still in a lab cell."""


PLACEHOLDER = "<FILL_IN>"
_FILL_IN_CALL = "__course_fill_in__()"


def replace_placeholders(lines: list[str]) -> list[str]:
    """IPython input transformer: ``<FILL_IN>`` becomes a call that raises TodoNotDone."""
    return [line.replace(PLACEHOLDER, _FILL_IN_CALL) for line in lines]


def enable_fill_in() -> None:
    """Install the ``<FILL_IN>`` transformer in the running IPython kernel (no-op elsewhere)."""
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover
        return
    shell = get_ipython()
    if shell is None:
        return
    shell.user_ns["__course_fill_in__"] = fill_in
    transformers = shell.input_transformers_cleanup
    if replace_placeholders not in transformers:
        transformers.append(replace_placeholders)


def fill_in(*_args: Any, **_kwargs: Any) -> Any:
    """What ``<FILL_IN>`` turns into when a lab cell runs: it stops with a clear message."""
    raise TodoNotDone(
        "This cell is a TODO: replace every <FILL_IN> in it with your code "
        "(the TODO comment says what to write), then run it again."
    )


def _evaluate(description: str, value: Callable[[], Any] | Any, hint: str | None) -> Any:
    if not callable(value):
        return value
    try:
        return value()
    except NameError as exc:
        raise LabCheckError(_message(description, f"{exc}. Run the TODO cell above first.", hint)) from None
    except TodoNotDone:
        raise LabCheckError(_message(description, "the TODO cell above still has <FILL_IN>.", hint)) from None
    except Exception as exc:  # the learner's object is not what the check expects
        raise LabCheckError(
            _message(description, f"checking it raised {type(exc).__name__}: {exc}", hint)
        ) from None


def _message(description: str, problem: str, hint: str | None) -> str:
    text = f"FAIL: {description}\n  {problem}"
    if hint:
        text += f"\n  Hint: {hint}"
    return text


def check(description: str, condition: Callable[[], Any] | Any, hint: str | None = None) -> None:
    """Pass if ``condition`` (or what it returns) is truthy."""
    if not _evaluate(description, condition, hint):
        raise LabCheckError(_message(description, "not yet.", hint))
    print(f"PASS: {description}")


def _same(actual: Any, expected: Any, tol: float | None) -> bool:
    if tol is not None:
        try:
            return math.isclose(float(actual), float(expected), rel_tol=0.0, abs_tol=tol)
        except (TypeError, ValueError):
            return False
    return actual == expected


def check_equal(
    description: str,
    actual: Callable[[], Any] | Any,
    expected: Any,
    hint: str | None = None,
    tol: float | None = None,
) -> None:
    """Pass if the learner's value equals ``expected`` (within ``tol`` for numbers)."""
    value = _evaluate(description, actual, hint)
    if not _same(value, expected, tol):
        within = f" (within {tol})" if tol is not None else ""
        raise LabCheckError(_message(description, f"expected {expected!r}{within}, got {value!r}.", hint))
    print(f"PASS: {description}")
