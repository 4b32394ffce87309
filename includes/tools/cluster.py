"""A real Spark standalone cluster (one master, one worker) on this machine's loopback.

Used by the cluster test, and handy for an instructor to rehearse class mode on a laptop::

    python -m includes.tools.cluster        # starts master + worker, prints the URL, Ctrl-C stops
    COURSE_SPARK_MASTER=spark://127.0.0.1:7077 make lab

pyspark's wheel ships ``bin/spark-class``; the master and the worker run in the foreground as
child processes, so stopping is a plain terminate (no pid files, nothing left behind).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from includes.paths import CourseSetupError
from includes.runtime.numeric import pin as pin_numerics


def spark_home() -> Path:
    import pyspark

    return Path(pyspark.__file__).resolve().parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for_port(port: int, process: subprocess.Popen, log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise CourseSetupError(f"Spark process exited with {process.returncode}; see {log}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.5)
    raise CourseSetupError(f"Spark process did not open port {port} within {timeout:.0f} s; see {log}")


class LocalCluster:
    """Start a master and a worker on 127.0.0.1; use as a context manager."""

    def __init__(self, cores: int = 2, memory: str = "6g", port: int | None = None,
                 workdir: Path | None = None, timeout: float = 120.0):
        self.cores = cores
        self.memory = memory
        self.port = port or free_port()
        self.webui_port = free_port()
        self.worker_webui_port = free_port()
        # a scratch folder of its own (logs, the worker's application folders) goes when it stops
        self.own_workdir = workdir is None
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="course-cluster-"))
        self.timeout = timeout
        self.processes: list[subprocess.Popen] = []

    @property
    def url(self) -> str:
        return f"spark://127.0.0.1:{self.port}"

    @property
    def webui_url(self) -> str:
        return f"http://127.0.0.1:{self.webui_port}"

    def _start(self, name: str, args: list[str], port: int) -> None:
        env = dict(os.environ, SPARK_HOME=str(spark_home()), SPARK_LOCAL_IP="127.0.0.1",
                   PYSPARK_PYTHON=sys.executable, SPARK_WORKER_DIR=str(self.workdir / "worker"),
                   # the executors' shuffle and block files, inside the scratch folder too
                   SPARK_LOCAL_DIRS=str(self.workdir / "local"))
        pin_numerics(env)  # the executors' Python workers inherit it from the worker
        log = self.workdir / f"{name}.log"
        with open(log, "ab") as out:
            process = subprocess.Popen(
                [str(spark_home() / "bin" / "spark-class"), *args],
                stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True,
            )
        self.processes.append(process)
        _wait_for_port(port, process, log, self.timeout)

    def start(self) -> "LocalCluster":
        self.workdir.mkdir(parents=True, exist_ok=True)
        try:
            self._start("master", ["org.apache.spark.deploy.master.Master", "--host", "127.0.0.1",
                                   "--port", str(self.port), "--webui-port", str(self.webui_port)],
                        self.port)
            self._start("worker", ["org.apache.spark.deploy.worker.Worker", self.url,
                                   "--host", "127.0.0.1", "--cores", str(self.cores),
                                   "--memory", self.memory, "--webui-port", str(self.worker_webui_port),
                                   "--work-dir", str(self.workdir / "worker")],
                        self.worker_webui_port)
            self._wait_for_worker()
        except BaseException:
            self.stop_processes()  # the logs stay: the error names one
            raise
        return self

    def status(self) -> dict:
        """The master's JSON status page (workers, active and completed applications)."""
        with urllib.request.urlopen(f"{self.webui_url}/json/", timeout=10) as response:
            return json.load(response)

    def _wait_for_worker(self) -> None:
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            try:
                if any(w.get("state") == "ALIVE" for w in self.status().get("workers", [])):
                    return
            except OSError:
                pass
            time.sleep(0.5)
        raise CourseSetupError(f"No worker registered with {self.url} within {self.timeout:.0f} s")

    def stop(self) -> None:
        """Stop the worker and the master, then delete the scratch folder if this cluster made it."""
        self.stop_processes()
        if self.own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def stop_processes(self) -> None:
        for process in reversed(self.processes):
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait(timeout=30)
        self.processes.clear()

    def __enter__(self) -> "LocalCluster":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def main() -> int:
    with LocalCluster(port=7077) as cluster:
        print(f"Spark standalone master: {cluster.url}   web UI: {cluster.webui_url}")
        print(f"Run notebooks on it with:  COURSE_SPARK_MASTER={cluster.url} make lab")
        print("Ctrl-C stops the master and the worker.")
        try:
            while all(p.poll() is None for p in cluster.processes):
                time.sleep(1)
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
