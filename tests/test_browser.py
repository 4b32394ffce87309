"""The learner's path in a real browser: `make lab`'s JupyterLab and the MLflow UI, seen by Chromium.

Playwright for Python drives Debian's chromium (/usr/bin/chromium; no `playwright install`).
On a machine without it these tests fail, naming the command that installs it: they never skip.

- JupyterLab (started as `make lab` starts it, on 127.0.0.1) opens a copy of lab ML03L; its
  first TODO run unchanged shows the TodoNotDone message, a wrong answer makes the check cell
  show its FAIL message, the solution's answer makes it show PASS; the check cell cannot be
  edited or deleted; JupyterLab's news prompt is never on screen (and, as a control, is on
  screen without the course's settings overrides). Screenshots of the three states:
  build/screenshots/lab-todo.png, lab-wrong.png, lab-right.png.
- The MLflow UI (`mlflow ui`, on 127.0.0.1) opens a lesson's experiment, made the lessons' way
  (includes/runtime/tracking.py) in a temporary store, on its training runs: the runs' names are
  listed, not MLflow 3's GenAI view. Screenshot: build/screenshots/mlflow-experiment.png.
"""

from __future__ import annotations

import ast
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import IO
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = Path("/usr/bin/chromium")
INSTALL_CHROMIUM = "apt-get install -y chromium"
SCREENSHOTS = ROOT / "build" / "screenshots"
LAB = "ML03L_Linear_Regression_I_Lab"
NEWS_PROMPT = "Would you like to get notified about official Jupyter news?"


# --- shared with tests/test_site.py ------------------------------------------------------------

@contextlib.contextmanager
def chromium() -> Iterator:
    """Headless Debian chromium, closed afterwards; fails (never skips) when it is not installed."""
    if not CHROMIUM.exists():
        pytest.fail(f"The browser tests need Chromium at {CHROMIUM}, which is missing. "
                    f"Install it with: {INSTALL_CHROMIUM}  (as root; .ci/run does this)", pytrace=False)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM))
        try:
            yield browser
        finally:
            browser.close()


def test_without_chromium_the_browser_tests_fail_naming_the_command_that_installs_it(monkeypatch):
    monkeypatch.setattr(sys.modules[__name__], "CHROMIUM", Path("/nonexistent/chromium"))
    with pytest.raises(pytest.fail.Exception, match=re.escape(INSTALL_CHROMIUM)):
        with chromium():
            pass


def new_page(browser):
    """A page in a fresh browser profile (no cookies, no local storage), 1280x900."""
    page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
    page.set_default_timeout(60_000)  # the suite's other worker may be running Spark meanwhile
    return page


def screenshot(page, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / name
    page.screenshot(path=path)
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def servers(*specs: tuple[list[str], str, dict[str, str]], seconds: float = 240) -> Iterator[None]:
    """Start each ``(command, url, env)`` in its own process group, all at once, and wait until every
    ``url`` answers; afterwards (also when the test fails) kill the groups."""
    started: list[tuple[subprocess.Popen, IO[str]]] = []
    try:
        for command, _, env in specs:
            log = tempfile.TemporaryFile(mode="w+")
            started.append((subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                             start_new_session=True), log))
        deadline = time.monotonic() + seconds
        for (proc, log), (command, url, _) in zip(started, specs):
            while True:
                if proc.poll() is not None:
                    log.seek(0)
                    pytest.fail(f"{command[:4]} exited with {proc.returncode}:\n{log.read()[-3000:]}")
                try:
                    with urllib.request.urlopen(url, timeout=5):
                        break
                except urllib.error.HTTPError:
                    break  # it answers
                except OSError:
                    if time.monotonic() > deadline:
                        pytest.fail(f"{url} did not answer within {seconds:.0f} s")
                    time.sleep(0.3)
        yield
    finally:
        for proc, log in started:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        for proc, log in started:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            log.close()


def server(command: list[str], url: str, env: dict[str, str], seconds: float = 240):
    """One server: see :func:`servers`."""
    return servers((command, url, env), seconds=seconds)


# --- JupyterLab ------------------------------------------------------------------------------------

TOKEN = "course-browser-test"


@pytest.fixture
def lab_server(tmp_path) -> Iterator[tuple[str, str, str]]:
    """`make lab`'s server on 127.0.0.1 with a copy of lab ML03L; yields (its base URL, the
    notebook's path, the base URL of the control server).

    The copy sits in a fresh folder in the course root (its set-up cell runs
    ``../includes/classroom_setup.py``), so labs/ is never touched; the folder goes afterwards.
    The control is JupyterLab with `make lab`'s server options but without the course's settings
    overrides (an empty settings folder): it must show the news prompt, or the check that `make
    lab` does not show it proves nothing. Both servers start at the same time.
    """
    from includes.tools.lab import NO_NEWS

    port, control_port = free_port(), free_port()
    folder = Path(tempfile.mkdtemp(prefix="browser-test-", dir=ROOT))
    try:
        shutil.copy(ROOT / "labs" / f"{LAB}.ipynb", folder)
        specs = []
        for name in ("lab", "control"):
            env = dict(os.environ, JUPYTER_RUNTIME_DIR=str(tmp_path / name / "runtime"),
                       JUPYTER_CONFIG_DIR=str(tmp_path / name / "config"),
                       JUPYTERLAB_SETTINGS_DIR=str(tmp_path / name / "user-settings"),
                       JUPYTERLAB_WORKSPACES_DIR=str(tmp_path / name / "workspaces"))
            common = ["--no-browser", "--ServerApp.ip=127.0.0.1", "--ServerApp.port_retries=0",
                      f"--IdentityProvider.token={TOKEN}"]
            if name == "lab":
                command = [sys.executable, "-m", "includes.tools.lab", f"--port={port}", *common]
            else:
                command = [sys.executable, "-m", "jupyter", "lab", f"--port={control_port}", "--allow-root", *common,
                           f"--LabApp.app_settings_dir={tmp_path / 'no-overrides'}", *NO_NEWS]
            specs.append((command, f"http://127.0.0.1:{port if name == 'lab' else control_port}/api/status?token={TOKEN}",
                          env))
        with servers(*specs):
            yield f"http://127.0.0.1:{port}", f"{folder.name}/{LAB}.ipynb", f"http://127.0.0.1:{control_port}"
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def solution_cell(index: int) -> str:
    """The code of the solution's cell ``index`` as a learner would write it (no markers, no LAB lines)."""
    from includes.tools.site import solution_as_written

    return solution_as_written(nbformat.read(ROOT / "solutions" / f"{LAB}.ipynb", as_version=4).cells[index].source)


def check_call(source: str) -> tuple[str, object, float, str]:
    """The description, expected value, tolerance and hint of a check cell's one ``check_equal`` call."""
    (statement,) = ast.parse(source).body
    call = statement.value
    assert isinstance(call, ast.Call) and call.func.id == "check_equal", source
    keywords = {keyword.arg: ast.literal_eval(keyword.value) for keyword in call.keywords}
    return ast.literal_eval(call.args[0]), ast.literal_eval(call.args[2]), keywords["tol"], keywords["hint"]


class Notebook:
    """A JupyterLab notebook on a Playwright page, driven with the mouse and keyboard as a learner would."""

    def __init__(self, page):
        self.page = page

    def cell(self, index: int):
        return self.page.locator(f'.jp-NotebookPanel:visible .jp-Cell[data-windowed-list-index="{index}"]')

    def source(self, index: int) -> str:
        return self.cell(index).locator(".cm-content").inner_text()

    def output(self, index: int) -> str:
        return self.cell(index).locator(".jp-OutputArea").inner_text()

    def select(self, index: int) -> None:
        """Select cell ``index`` in command mode (a click on its prompt, then Escape)."""
        cell = self.cell(index)
        cell.scroll_into_view_if_needed()
        cell.locator(".jp-InputPrompt").click()
        self.page.keyboard.press("Escape")
        self.page.wait_for_function(
            "i => document.querySelector(`.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Cell[data-windowed-list-index='${i}']`)"
            "?.classList.contains('jp-mod-active')", arg=index)

    def start(self, index: int) -> None:
        """Run cell ``index`` (select it, Shift+Enter), without waiting."""
        self.select(index)
        self.page.keyboard.press("Shift+Enter")

    def wait(self, index: int, expect: str, seconds: float = 180) -> str:
        """Wait until cell ``index`` has run (a number in its prompt) with ``expect`` in its output; return the output."""
        self.page.wait_for_function(
            "([i, text]) => { const c = document.querySelector(`.jp-NotebookPanel:not(.lm-mod-hidden) "
            ".jp-Cell[data-windowed-list-index='${i}']`); return c && /\\[\\d+\\]/.test(c.querySelector('.jp-InputPrompt').innerText)"
            " && c.querySelector('.jp-OutputArea').innerText.includes(text); }", arg=[index, expect], timeout=seconds * 1000)
        assert re.search(r"\[\d+\]", self.cell(index).locator(".jp-InputPrompt").inner_text())
        return self.output(index)

    def run(self, index: int, expect: str, seconds: float = 180) -> str:
        """Run cell ``index`` and wait until it has finished with ``expect`` in its output."""
        self.start(index)
        return self.wait(index, expect, seconds)

    def type_into(self, index: int, text: str) -> None:
        """Replace the cell's code with ``text`` (as pasted) and wait until the editor holds it."""
        cell = self.cell(index)
        cell.scroll_into_view_if_needed()
        cell.locator(".cm-content").click()
        self.page.keyboard.press("Control+a")
        self.page.keyboard.insert_text(text)
        # Shift+Enter before the editor holds the text runs nothing (or the old code)
        self.page.wait_for_function(
            "([i, text]) => { const c = document.querySelector(`.jp-NotebookPanel:not(.lm-mod-hidden) "
            ".jp-Cell[data-windowed-list-index='${i}'] .cm-content`); "
            "return c && [...c.querySelectorAll('.cm-line')].map(l => l.textContent).join('\\n') === text; }",
            arg=[index, text])


def assert_no_news_prompt(page) -> None:
    assert page.get_by_text(NEWS_PROMPT).count() == 0, "JupyterLab's news prompt is on screen"


def assert_no_course_internals(output: str) -> None:
    # issue 26: a TODO and a failed check are a short message, not a traceback into the course's code
    # (includes/runtime/checks.py: TodoNotDone and LabCheckError render themselves, `_render_traceback_`)
    assert "checks.py" not in output, f"a frame of includes/runtime/checks.py is shown:\n{output}"
    assert "__course_fill_in__" not in output, f"the <FILL_IN> rewrite is shown:\n{output}"


def test_learner_runs_a_todo_a_wrong_and_a_right_answer_in_jupyterlab(lab_server):
    base, notebook_path, control = lab_server
    lab = nbformat.read(ROOT / "labs" / f"{LAB}.ipynb", as_version=4)
    todo, check = 5, 6
    assert "<FILL_IN>" in lab.cells[todo].source and "check" in lab.cells[check].metadata.get("tags", [])
    description, expected, tol, hint = check_call(lab.cells[check].source)
    right = solution_cell(todo)
    wrong = right.replace("train_df.agg(", "test_df.agg(")  # the mean of the test set: a classic slip
    assert wrong != right

    with chromium() as browser:
        page = new_page(browser)
        page.goto(f"{base}/lab/tree/{notebook_path}?token={TOKEN}")
        notebook = Notebook(page)
        notebook.cell(check).wait_for(timeout=120_000)
        page.wait_for_selector(".jp-NotebookPanel:visible .jp-Notebook-ExecutionIndicator[data-status='idle']",
                               timeout=120_000)
        notebook.start(1)  # Spark starts: meanwhile, the control shows the news prompt
        control_page = new_page(browser)
        control_page.goto(f"{control}/lab?token={TOKEN}")
        control_page.get_by_text(NEWS_PROMPT).wait_for(timeout=120_000)
        control_page.close()
        notebook.wait(1, "Classroom ready for ML03L")
        notebook.run(3, "training rows")

        # 1. the TODO as it is: the TodoNotDone message, nothing else
        output = notebook.run(todo, "TodoNotDone")
        assert "This cell is a TODO: replace every <FILL_IN>" in output
        assert_no_course_internals(output)
        notebook.select(todo)
        screenshot(page, "lab-todo.png")

        # 2. a wrong answer: the check cell says FAIL, what it expected and what came
        notebook.type_into(todo, wrong)
        notebook.run(todo, "baseline RMSE")
        output = notebook.run(check, "FAIL:")
        assert f"FAIL: {description}\n  expected {expected!r} (within {tol}), got 240.63" in output
        assert f"Hint: {hint}" in output
        assert "PASS" not in output
        assert_no_course_internals(output)
        screenshot(page, "lab-wrong.png")

        # 3. the solution's answer: PASS
        notebook.type_into(todo, right)
        notebook.run(todo, "baseline RMSE: $240.71")
        output = notebook.run(check, "PASS")
        assert f"PASS: {description}" in output
        assert "FAIL" not in output
        screenshot(page, "lab-right.png")

        # the check cell is locked: typing into it changes nothing, and `d d` does not delete it
        locked = notebook.source(check)
        cells = page.locator(".jp-NotebookPanel:visible .jp-Cell").count()
        notebook.cell(check).locator(".cm-content").click()
        page.keyboard.type("x = 1  # edited")
        page.keyboard.press("Escape")
        notebook.select(check)
        page.keyboard.press("d")
        page.keyboard.press("d")
        page.wait_for_timeout(500)
        assert notebook.source(check) == locked
        assert page.locator(".jp-NotebookPanel:visible .jp-Cell").count() == cells
        assert "check_equal(" in notebook.source(check)

        # JupyterLab asks about news shortly after it loads: by now (a minute later) it would be there
        assert_no_news_prompt(page)


# --- MLflow UI -------------------------------------------------------------------------------------

EXPERIMENT = "ML05_MLflow_Tracking"
RUN_NAMES = ("browser-test-bedrooms", "browser-test-all-features", "browser-test-log-price")
# a lesson's runs, logged the lessons' way, through the UI's server once it answers
LOG_RUNS = f"""
import os, time, urllib.request
import mlflow
from includes.runtime.tracking import fresh_experiment
deadline = time.monotonic() + 300
while True:
    try:
        urllib.request.urlopen(os.environ["MLFLOW_TRACKING_URI"] + "/health", timeout=5)
        break
    except OSError:
        if time.monotonic() > deadline:
            raise
        time.sleep(0.3)
experiment = fresh_experiment({EXPERIMENT!r})
for i, name in enumerate({RUN_NAMES!r}):
    with mlflow.start_run(run_name=name):
        mlflow.log_param("features", i + 1)
        mlflow.log_metric("rmse", 240.0 - 10 * i)
print(experiment.experiment_id)
"""


def test_mlflow_ui_opens_a_lessons_experiment_on_its_training_runs(tmp_path):
    """MLflow 3.17's UI ignores the experiment's ``mlflow.experimentKind`` tag: the side it opens on
    follows its "GenAI" / "Model training" switch (GenAI unless chosen, remembered by the browser)
    or ``?workflowType=machine_learning`` in the address. Both are what a learner can use."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    mlflow = str(Path(sys.executable).with_name("mlflow"))
    command = [mlflow, "ui", "--backend-store-uri", store, "--default-artifact-root", (tmp_path / "artifacts").as_uri(),
               "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    # the client loads mlflow while the server starts, then logs as soon as the server answers
    logger = subprocess.Popen([sys.executable, "-c", LOG_RUNS], cwd=ROOT, env=dict(os.environ, MLFLOW_TRACKING_URI=base),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # no job-execution workers (the UI does not need them): fewer processes on a 2-core machine
        with server(command, f"{base}/health", dict(os.environ, MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false")), \
                chromium() as browser:
            out, err = logger.communicate(timeout=300)
            assert logger.returncode == 0, err[-3000:]
            experiment_id = out.split()[-1]
            with urllib.request.urlopen(f"{base}/api/2.0/mlflow/experiments/get?experiment_id={experiment_id}") as response:
                tags = {tag["key"]: tag["value"] for tag in json.loads(response.read())["experiment"].get("tags", [])}
            assert tags.get("mlflow.experimentKind") == "custom_model_development"  # as every lesson tags it

            def assert_training_runs(page) -> None:
                for name in RUN_NAMES:
                    page.get_by_text(name, exact=True).first.wait_for(timeout=60_000)
                assert re.search(rf"#/experiments/{experiment_id}/runs\b", page.url), page.url
                assert "workflowType=machine_learning" in page.url
                assert page.get_by_text(f"{len(RUN_NAMES)} matching runs").count() == 1
                assert page.get_by_text(EXPERIMENT).count() >= 1

            # the experiment's address with ?workflowType=machine_learning: its training runs
            page = new_page(browser)
            page.goto(f"{base}/#/experiments/{experiment_id}?workflowType=machine_learning")
            assert_training_runs(page)
            screenshot(page, "mlflow-experiment.png")
            # or "Model training" chosen once on the home page: the browser remembers it
            page = new_page(browser)
            page.goto(f"{base}/")
            page.get_by_text("Model training", exact=True).click()
            page.wait_for_function("() => Object.keys(localStorage).some(k => k.includes('mlflow.workflowType'))")
            page.goto(f"{base}/#/experiments/{experiment_id}")
            assert_training_runs(page)
    finally:
        if logger.poll() is None:
            logger.kill()
            logger.communicate()
