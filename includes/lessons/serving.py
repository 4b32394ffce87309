"""A model server as a supervised child process, for ML10's real-time deployment (and its benchmark).

``mlflow models serve`` is not one process: the CLI starts a web server (uvicorn) in a shell,
the server starts its worker processes, and a worker that loads a Spark-flavour model starts a
local Spark JVM of its own. Stopping "the server" with ``Popen.terminate()`` stops only the first
of them and leaves the rest running on their port. This module keeps the whole tree on a leash:

- ``python -m includes.lessons.serving [--log FILE] [--exit-with-stdin] -- COMMAND ...`` is the
  **supervisor**, a small wrapper process on the standard library alone. It starts COMMAND in a
  new session (so in a process group of its own, whose id is the command's pid), becomes the
  child subreaper of the tree on Linux (orphaned grandchildren are handed to it, not to init)
  and stops the **whole group** (SIGTERM, then SIGKILL after a grace period) when it gets SIGTERM
  or SIGINT, when COMMAND exits, and, with ``--exit-with-stdin``, when its stdin reaches end of
  file: that pipe comes from the launcher and closes when the launcher dies, even by SIGKILL.
  It prints one line, :data:`READY` followed by the group id, once the command runs. (A process
  of the tree that starts a session of its own leaves the group; the MLflow server does not.)
- :class:`Service` is the notebook's side: it starts the supervisor with a pipe on its stdin, waits
  until an HTTP health URL answers 200 (with a generous timeout and an error that names the
  command and quotes its last output lines), and :meth:`Service.stop` ends the supervisor and
  checks that no process of the group is left.
- :func:`mlflow_serve_command`, :func:`invoke` and :func:`timed_requests` are the MLflow parts:
  the serve command on loopback with the local environment, one scoring request with a
  ``dataframe_split`` body, and a loop of N requests returning latencies (for the benchmark:
  the lesson prints no timings).

Only the standard library is imported at module level; pandas is used when a DataFrame is passed.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import deque
from pathlib import Path

HOST = "127.0.0.1"
READY = "serving supervisor: process group"
GRACE_SECONDS = 10.0  # between SIGTERM and SIGKILL for the group


# ------------------------------------------------------------------------------------------------
# Processes
# ------------------------------------------------------------------------------------------------

def free_port(host: str = HOST) -> int:
    """A TCP port that is free on ``host`` right now (the OS picks it; a server started soon after
    gets it unless another process takes it in between)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def group_members(pgid: int) -> list[int]:
    """Pids of the live (not zombie) processes of process group ``pgid``, from /proc (Linux)."""
    members = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue  # the process ended while we looked
        fields = stat.rsplit(")", 1)[1].split()  # after "pid (comm)": state ppid pgrp ...
        if fields[0] != "Z" and int(fields[2]) == pgid:
            members.append(int(entry))
    return sorted(members)


def group_rss(pgid: int) -> int:
    """Resident memory, in bytes, of the live processes of process group ``pgid`` (Linux /proc;
    memory shared between them is counted once per process, so this is an upper bound)."""
    page = os.sysconf("SC_PAGE_SIZE")
    total = 0
    for pid in group_members(pgid):
        try:
            total += int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * page
        except (OSError, IndexError, ValueError):
            continue  # the process ended while we looked
    return total


def _become_subreaper() -> None:
    """Make orphaned descendants this process's children (Linux prctl PR_SET_CHILD_SUBREAPER), so
    they are reaped here and stay visible; elsewhere a no-op."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
    except (OSError, AttributeError):
        pass


def _reap() -> None:
    """Collect every exited child (direct or adopted) without blocking."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def stop_group(pgid: int, grace: float = GRACE_SECONDS) -> bool:
    """SIGTERM to process group ``pgid``, SIGKILL to what is left after ``grace`` seconds; True
    when no live process of the group remains."""
    for signum, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(pgid, signum)
        except ProcessLookupError:
            return True
        except PermissionError:
            pass
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            _reap()
            if not group_members(pgid):
                return True
            time.sleep(0.05)
    _reap()
    return not group_members(pgid)


def supervise(command: list[str], log: str | None = None, grace: float = GRACE_SECONDS,
              exit_with_stdin: bool = False) -> int:
    """Run ``command`` in a new session and stop its whole process group when this process is told
    to stop (SIGTERM, SIGINT), when stdin closes (with ``exit_with_stdin``), or when the command
    exits. Returns the command's exit code (128 + SIGTERM when it was stopped)."""
    _become_subreaper()
    output = open(log, "ab", buffering=0) if log else None
    try:
        # never onto this process's stdout: the launcher reads the READY line there
        child = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=output or sys.stderr.fileno(),
                                 stderr=subprocess.STDOUT, start_new_session=True)
    except OSError as exc:
        # on stdout, where the launcher reads the first line (the READY line when all is well)
        print(f"serving supervisor: cannot start {command[0]!r}: {exc.strerror or exc}", flush=True)
        return 127
    pgid = child.pid  # start_new_session: the child leads a new session and process group
    stop = threading.Event()

    def on_signal(*_):
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    def watch_stdin():
        # os.read on the descriptor, not sys.stdin (see posts.main): returns b"" when the pipe closes
        try:
            while os.read(sys.stdin.fileno(), 4096):
                pass
        except OSError:
            pass
        stop.set()

    if exit_with_stdin:
        threading.Thread(target=watch_stdin, daemon=True).start()
    print(f"{READY} {pgid}", flush=True)
    while not stop.is_set() and child.poll() is None:
        stop.wait(0.2)
    code = child.poll()
    stop_group(pgid, grace)
    if code is None:
        child.wait()
        code = 128 + signal.SIGTERM
    if output:
        output.close()
    return code


# ------------------------------------------------------------------------------------------------
# The notebook's side
# ------------------------------------------------------------------------------------------------

def tail(path: os.PathLike | str | None, lines: int = 20) -> str:
    """The last ``lines`` lines of a text file ('' if there is none)."""
    if not path or not os.path.exists(path):
        return ""
    with open(path, encoding="utf-8", errors="replace") as handle:
        return "".join(deque(handle, maxlen=lines)).rstrip()


def http_ok(url: str, timeout: float = 2.0) -> bool:
    """True when a GET of ``url`` answers 200."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


class Service:
    """``command`` run under the supervisor, ready once ``health_url`` answers 200::

        with serving.Service(command, health_url=f"http://127.0.0.1:{port}/health", log=log) as service:
            ...  # the server answers here

    :meth:`start` raises :class:`RuntimeError` (naming the command, quoting the last lines of its
    output) when the server exits or does not answer within ``timeout`` seconds; :meth:`stop`
    ends the supervisor, which stops the command's whole process group, and :attr:`left_behind`
    lists any process of the group still alive afterwards (none, normally).
    """

    def __init__(self, command: list[str], health_url: str | None = None, timeout: float = 180.0,
                 log: os.PathLike | str | None = None, env: dict | None = None, cwd: os.PathLike | str | None = None,
                 grace: float = GRACE_SECONDS):
        if not command:
            raise ValueError("command must not be empty")
        self.command, self.health_url, self.timeout = [str(part) for part in command], health_url, timeout
        self.log, self.env, self.cwd, self.grace = (str(log) if log else None), env, cwd, grace
        self.process = None  # the supervisor
        self.pgid = None  # the command's process group
        self.returncode = None
        self.left_behind: list[int] = []
        self.startup_seconds = None  # from start() until the health URL answered
        self._started = None

    def start(self, wait: bool = True) -> Service:
        """Start the supervisor and the command; with ``wait`` (the default) also :meth:`wait_ready`.
        ``wait=False`` returns at once, so a slow server can boot while the caller does other work."""
        from includes.paths import COURSE_ROOT

        if self.process is not None:
            raise RuntimeError("the service is already running")
        if self.log:
            Path(self.log).parent.mkdir(parents=True, exist_ok=True)
            Path(self.log).write_bytes(b"")
        env = dict(os.environ if self.env is None else self.env)
        env["PYTHONPATH"] = os.pathsep.join(p for p in [str(COURSE_ROOT), env.get("PYTHONPATH", "")] if p)
        # the environment's scripts first: mlflow starts `uvicorn` by name, and a kernel started
        # without activating .venv does not have .venv/bin on its PATH
        env["PATH"] = os.pathsep.join(p for p in [str(Path(sys.executable).parent), env.get("PATH", "")] if p)
        supervisor = [sys.executable, "-m", "includes.lessons.serving", "--exit-with-stdin", "--grace", str(self.grace)]
        self._started, self.startup_seconds, self.left_behind = time.monotonic(), None, []
        self.process = subprocess.Popen(supervisor + (["--log", self.log] if self.log else []) + ["--", *self.command],
                                        cwd=self.cwd or COURSE_ROOT, env=env, stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, text=True)
        line = read_line(self.process.stdout, 30.0)
        if not line.startswith(READY):
            self._fail(f"its supervisor did not start (it said {line!r})")
        self.pgid = int(line.rsplit(" ", 1)[1])
        return self.wait_ready() if wait else self

    def wait_ready(self) -> Service:
        """Wait until :attr:`health_url` answers 200, at most :attr:`timeout` seconds after the start."""
        if self.process is None:
            raise RuntimeError("the service is not started")
        deadline = self._started + self.timeout
        while self.health_url is not None and not http_ok(self.health_url):
            if self.process.poll() is not None:
                self._fail(f"it exited with code {self.process.returncode} before {self.health_url} answered")
            if time.monotonic() > deadline:
                self._fail(f"{self.health_url} did not answer within {self.timeout:.0f} seconds")
            time.sleep(0.25)
        if self.startup_seconds is None:
            self.startup_seconds = time.monotonic() - self._started
        return self

    def _fail(self, reason: str) -> None:
        self.stop()
        last = tail(self.log)
        raise RuntimeError(f"the service `{' '.join(self.command)}` failed to start: {reason}"
                           + (f"; its last output lines:\n{last}" if last else
                              " (no output captured)" if self.log else " (pass log=... to capture its output)"))

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def members(self) -> list[int]:
        """Pids of the live processes in the command's group (the supervisor is not one of them)."""
        return group_members(self.pgid) if self.pgid else []

    def memory_bytes(self) -> int:
        """Resident memory of the command's process group now (see :func:`group_rss`)."""
        return group_rss(self.pgid) if self.pgid else 0

    def stop(self) -> None:
        """Stop the supervisor and with it the command's process group; safe to call twice."""
        if self.process is None:
            return
        self.returncode = end_child(self.process, self.grace + 15)
        self.process = None
        if self.pgid and group_members(self.pgid):  # the supervisor was killed before it could clean up
            stop_group(self.pgid, self.grace)
        self.left_behind = self.members()

    def __enter__(self) -> Service:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def read_line(stream, timeout: float) -> str:
    """One line from a child's stdout, or '' after ``timeout`` seconds (the posts server's and the
    supervisor's start-up line)."""
    result = [""]
    reader = threading.Thread(target=lambda: result.__setitem__(0, stream.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    return result[0].strip()


def end_child(process: subprocess.Popen, wait: float) -> int:
    """Terminate a child started with pipes (killed if it has not exited after ``wait`` seconds),
    close its pipes, and return its exit code."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    for pipe in (process.stdin, process.stdout):
        if pipe:
            pipe.close()
    return process.returncode


# ------------------------------------------------------------------------------------------------
# MLflow's scoring server
# ------------------------------------------------------------------------------------------------

def mlflow_serve_command(model_uri: str, port: int, host: str = HOST, workers: int = 1) -> list[str]:
    """``mlflow models serve`` for ``model_uri`` on ``host:port`` in this Python environment
    (``--env-manager local``: the default, virtualenv, rebuilds the model's environment and needs
    pyenv and a network)."""
    return [sys.executable, "-m", "mlflow", "models", "serve", "-m", model_uri, "--host", host,
            "--port", str(port), "--workers", str(workers), "--env-manager", "local"]


def split_body(df) -> bytes:
    """A pandas DataFrame as the ``dataframe_split`` JSON body MLflow's ``/invocations`` takes."""
    return json.dumps({"dataframe_split": json.loads(df.to_json(orient="split", index=False))}).encode("utf-8")


def invoke(base_url: str, df, timeout: float = 60.0) -> list:
    """POST ``df`` (pandas) to ``base_url/invocations``; the ``predictions`` of the answer."""
    return _post(base_url, split_body(df), timeout)


def _post(base_url: str, body: bytes, timeout: float) -> list:
    request = urllib.request.Request(base_url.rstrip("/") + "/invocations", data=body, method="POST",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            answer = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode("utf-8", "replace")[:500]
        raise RuntimeError(f"the model server answered {exc.code}: {detail}") from None
    return answer["predictions"] if isinstance(answer, dict) else answer


def timed_requests(base_url: str, df, n: int, rows_per_request: int = 1, timeout: float = 60.0) -> list[float]:
    """Send ``n`` requests of ``rows_per_request`` rows of ``df`` (cycling through it), one after the
    other; the latency of each in seconds (for the benchmark)."""
    if n < 1 or rows_per_request < 1:
        raise ValueError("n and rows_per_request must be >= 1")
    bodies = [split_body(df.iloc[start:start + rows_per_request])
              for start in range(0, max(len(df) - rows_per_request + 1, 1), rows_per_request)]
    latencies = []
    for i in range(n):
        started = time.perf_counter()
        _post(base_url, bodies[i % len(bodies)], timeout)
        latencies.append(time.perf_counter() - started)
    return latencies


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m includes.lessons.serving",
        description="Run COMMAND in its own process group and stop the whole group on SIGTERM/SIGINT, "
                    "when stdin closes, or when COMMAND exits.")
    parser.add_argument("--log", help="append COMMAND's stdout and stderr to this file (default: this process's stderr)")
    parser.add_argument("--grace", type=float, default=GRACE_SECONDS,
                        help="seconds between SIGTERM and SIGKILL for the group")
    parser.add_argument("--exit-with-stdin", action="store_true",
                        help="stop when stdin closes (the launcher's pipe: the group dies with its parent)")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- COMMAND [ARG ...]")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give the command after --")
    return supervise(command, args.log, args.grace, args.exit_with_stdin)


if __name__ == "__main__":
    raise SystemExit(main())
