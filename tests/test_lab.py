"""`make lab` (includes/tools/lab.py): a real JupyterLab starts, as root too, without the news prompt."""

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from includes.tools.lab import lab_arguments

ROOT = Path(__file__).resolve().parent.parent


def test_root_gets_allow_root_and_others_do_not():
    assert "--allow-root" in lab_arguments(0)
    assert "--allow-root" not in lab_arguments(1000)
    assert lab_arguments(1000, ["--port=1"])[-1] == "--port=1"


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
        assert '"news": {"disabled": true}' in page  # the frontend then never asks about news
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        output = proc.communicate(timeout=30)[0]
    if os.geteuid() == 0:
        assert "starting Jupyter with --allow-root" in output
