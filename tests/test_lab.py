"""`make lab` (includes/tools/lab.py): a real JupyterLab starts, as root too, without the news prompt.

What a person sees (no news prompt on screen) is proven in a real browser by tests/test_browser.py.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from includes.tools.lab import NOTIFICATION_PLUGIN, lab_arguments, overrides_path, write_no_news_overrides

ROOT = Path(__file__).resolve().parent.parent


def test_root_gets_allow_root_and_others_do_not():
    assert "--allow-root" in lab_arguments(0)
    assert "--allow-root" not in lab_arguments(1000)
    assert lab_arguments(1000, ["--port=1"])[-1] == "--port=1"


def test_no_news_overrides_are_merged_into_an_existing_file(tmp_path):
    path = overrides_path(tmp_path)
    path.parent.mkdir(parents=True)
    # JupyterLab reads the file as JSON5: comments and trailing commas are allowed
    path.write_text('{\n  // a setting of the site\n  "@jupyterlab/apputils-extension:themes": {"theme": "JupyterLab Dark"},\n'
                    '  "%s": {"doNotDisturbMode": true, "fetchNews": "none"},\n}' % NOTIFICATION_PLUGIN)
    assert write_no_news_overrides(tmp_path) == path
    assert json.loads(path.read_text()) == {
        "@jupyterlab/apputils-extension:themes": {"theme": "JupyterLab Dark"},
        NOTIFICATION_PLUGIN: {"doNotDisturbMode": True, "fetchNews": "false", "checkForUpdates": False}}
    before = path.stat().st_mtime_ns
    write_no_news_overrides(tmp_path)  # already right: the file is left alone
    assert path.stat().st_mtime_ns == before
    assert [p.name for p in path.parent.iterdir()] == ["overrides.json"]


def test_no_news_overrides_follow_the_installed_schema():
    """The values' types are the ones JupyterLab's own schema of the notification plugin allows."""
    schema_file = Path(sys.prefix, "share/jupyter/lab/schemas/@jupyterlab/apputils-extension/notification.json")
    properties = json.loads(schema_file.read_text())["properties"]
    assert "false" in [choice["const"] for choice in properties["fetchNews"]["oneOf"]]
    assert properties["checkForUpdates"]["type"] == "boolean"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_jupyterlab_starts_on_loopback_without_news(tmp_path):
    port, token = _free_port(), "course-test-token"
    env = dict(os.environ, JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"), JUPYTER_CONFIG_DIR=str(tmp_path / "config"))
    proc = subprocess.Popen(
        [sys.executable, "-m", "includes.tools.lab", "--no-browser", f"--port={port}", "--ServerApp.ip=127.0.0.1",
         f"--IdentityProvider.token={token}", "--ServerApp.port_retries=0"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        page, deadline = None, time.monotonic() + 90
        while page is None and time.monotonic() < deadline:
            assert proc.poll() is None, proc.stdout.read()[-3000:]
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/lab?token={token}", timeout=5) as response:
                    page = response.read().decode()
            except OSError:
                time.sleep(0.5)
        assert page is not None, "JupyterLab did not answer within 90 s"
        assert '"news": {"disabled": true}' in page  # the server fetches no news
        # the defaults the frontend reads (overrides change a schema's defaults; the learner's own
        # settings, empty here, would win): never fetch news (so never ask), never check for updates
        request = urllib.request.Request(f"http://127.0.0.1:{port}/lab/api/settings/{NOTIFICATION_PLUGIN}",
                                         headers={"Authorization": f"token {token}"})
        with urllib.request.urlopen(request, timeout=10) as response:
            settings = json.loads(response.read())
        defaults = {key: value.get("default") for key, value in settings["schema"]["properties"].items()}
        assert (defaults["fetchNews"], defaults["checkForUpdates"]) == ("false", False)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        output = proc.communicate(timeout=30)[0]
    if os.geteuid() == 0:
        assert "starting Jupyter with --allow-root" in output
