"""Lab checks: the check cells' functions and the ``<FILL_IN>`` placeholder at run time.

A check cell calls :func:`check` or :func:`check_equal`; both print ``PASS: ...`` when the
learner's answer is right and raise :class:`LabCheckError` with what was expected and a hint
when it is not. The value under test is given as a function (usually a lambda) so that a
name the learner has not defined yet becomes a helpful message instead of a NameError.

What the learner sees. ``PASS`` is printed in green, a failure is a short red ``FAIL: ...``
block and an unfinished TODO a short ``TodoNotDone: This cell is a TODO ...`` line: both
exceptions render themselves in IPython (``_render_traceback_``), so no traceback into this
module and no trace of the ``<FILL_IN>`` rewrite is shown. Any other error, in the learner's
own code, keeps IPython's normal traceback. The colours are ANSI codes: JupyterLab, nbconvert's
static HTML and a terminal all show them (``plain`` strips them).

Every failure has a *kind*, which the course's lab probes (tests/course_plugin.py) read:
``mismatch`` (the value is not the expected one), ``undefined`` (a name the TODO defines is
missing), ``todo`` (a ``<FILL_IN>`` was reached) and ``error`` (checking the value raised some
other exception: the answer is not even the right kind of object). While recording
(:func:`start_recording`), checks do not raise: each one's outcome is kept, so a probe sees
every check of a cell, not just the first that fails.
"""

from __future__ import annotations

import math
import re
from typing import Any, Callable

GREEN, RED, BOLD, RESET = "\x1b[32m", "\x1b[31m", "\x1b[1m", "\x1b[0m"
PASS_MARK = f"{BOLD}{GREEN}PASS{RESET}"
FAIL_MARK = f"{BOLD}{RED}FAIL{RESET}"
_ANSI = re.compile(r"\x1b\[[0-9;]*m")

CATCHES = ("mismatch", "undefined", "todo")  # the kinds of failure that are a check doing its job


def plain(text: str) -> str:
    """``text`` without its ANSI colour codes."""
    return _ANSI.sub("", text)


class LabCheckError(AssertionError):
    """A lab answer is not right yet; the message says what was expected."""

    def __init__(self, message: str, kind: str = "mismatch"):
        super().__init__(message)
        self.kind = kind

    def _render_traceback_(self) -> list[str]:
        """What IPython shows instead of a traceback: the message, FAIL in red."""
        first, *rest = str(self).split("\n")
        first = first.replace("FAIL:", f"{FAIL_MARK}{RED}:", 1) + RESET if first.startswith("FAIL:") else first
        return [first, *rest]


class TodoNotDone(NotImplementedError):
    """Raised by a ``<FILL_IN>`` placeholder that is still in a lab cell."""

    def _render_traceback_(self) -> list[str]:
        """What IPython shows instead of a traceback through the ``<FILL_IN>`` rewrite."""
        return [f"{BOLD}{RED}TodoNotDone{RESET}: {self}"]


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


TODO_MESSAGE = ("This cell is a TODO: replace every <FILL_IN> in it with your code "
                "(the TODO comment says what to write), then run it again.")


def fill_in(*_args: Any, **_kwargs: Any) -> Any:
    """What ``<FILL_IN>`` turns into when a lab cell runs: it stops with a clear message."""
    raise TodoNotDone(TODO_MESSAGE)


# --- recording: every check's outcome, for the lab probes -------------------------------------

_recording: list[dict] | None = None


def start_recording() -> None:
    """From now on checks record their outcome instead of printing PASS or raising."""
    global _recording
    _recording = []


def stop_recording() -> list[dict]:
    """Stop recording; return one dict per check run: description, passed, kind, message."""
    global _recording
    records, _recording = _recording or [], None
    return records


def _passed(description: str) -> None:
    if _recording is not None:
        _recording.append({"description": description, "passed": True, "kind": None, "message": ""})
    else:
        print(f"{PASS_MARK}: {description}")


def _failed(description: str, error: LabCheckError) -> None:
    if _recording is None:
        raise error
    _recording.append({"description": description, "passed": False, "kind": error.kind, "message": str(error)})


# --- the checks ---------------------------------------------------------------------------------

def _evaluate(description: str, value: Callable[[], Any] | Any, hint: str | None) -> Any:
    if not callable(value):
        return value
    try:
        return value()
    except NameError as exc:
        raise LabCheckError(_message(description, f"{exc}. Run the TODO cell above first.", hint),
                            kind="undefined") from None
    except TodoNotDone:
        raise LabCheckError(_message(description, "the TODO cell above still has <FILL_IN>.", hint),
                            kind="todo") from None
    except Exception as exc:  # the learner's object is not what the check expects
        raise LabCheckError(_message(description, f"checking it raised {type(exc).__name__}: {exc}", hint),
                            kind="error") from None


def _message(description: str, problem: str, hint: str | None) -> str:
    text = f"FAIL: {description}\n  {problem}"
    if hint:
        text += f"\n  Hint: {hint}"
    return text


def check(description: str, condition: Callable[[], Any] | Any, hint: str | None = None) -> None:
    """Pass if ``condition`` (or what it returns) is truthy."""
    try:
        if not _evaluate(description, condition, hint):
            raise LabCheckError(_message(description, "not yet.", hint))
    except LabCheckError as error:
        _failed(description, error)
        return
    _passed(description)


def _same(actual: Any, expected: Any, tol: float | None) -> bool:
    if tol is not None:
        if isinstance(actual, (str, bytes)) or isinstance(expected, (str, bytes)):
            return False  # "1.0" is not the number 1.0
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
    try:
        value = _evaluate(description, actual, hint)
        if not _same(value, expected, tol):
            within = f" (within {tol})" if tol is not None else ""
            raise LabCheckError(_message(description, f"expected {expected!r}{within}, got {value!r}.", hint))
    except LabCheckError as error:
        _failed(description, error)
        return
    _passed(description)
