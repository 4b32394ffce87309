"""includes/lessons/serving.py: the supervised model server of ML10 (process groups, health, requests)."""

import http.server
import json
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

from includes.lessons import serving
from tests.conftest import pid_alive, run_until_a_cell_fails

ROOT = Path(__file__).resolve().parent.parent

# A small process tree, like `mlflow models serve`: a shell that leaves a grandchild behind
# (a sleeping process, started in the background) and becomes an HTTP server on PORT.
TREE = "sleep 600 & exec {python} -m http.server --bind 127.0.0.1 {port}"


def tree_command(port):
    return ["bash", "-c", TREE.format(python=sys.executable, port=port)]


def wait_until(condition, seconds=20):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return condition()


def group_gone(pgid, seconds=20):
    return wait_until(lambda: not serving.group_members(pgid), seconds)


def started_tree(tmp_path, **kwargs):
    port = serving.free_port()
    service = serving.Service(tree_command(port), health_url=f"http://127.0.0.1:{port}/", timeout=60,
                              log=tmp_path / "server.log", grace=3, **kwargs)
    return service.start(), port


def test_the_service_answers_and_stop_leaves_no_process_of_its_group(tmp_path):
    service, port = started_tree(tmp_path)
    try:
        assert service.running and serving.http_ok(f"http://127.0.0.1:{port}/")
        members = service.members()
        assert len(members) == 2  # the HTTP server and the background sleep
        assert service.process.pid not in members  # the supervisor stays outside the group it stops
        assert service.startup_seconds is not None
        assert 1_000_000 < service.memory_bytes() < 2_000_000_000  # a Python HTTP server and a sleep
    finally:
        service.stop()
    assert not service.running and service.left_behind == []
    assert not any(pid_alive(pid) for pid in members)
    assert service.returncode == 128 + signal.SIGTERM  # the supervisor stopped the command
    assert not serving.http_ok(f"http://127.0.0.1:{port}/", timeout=1)
    service.stop()  # a second stop is harmless


def test_no_process_outlives_a_parent_killed_by_sigkill(tmp_path):
    """A kernel that dies (SIGKILL: no cleanup code runs) takes the whole server group with it."""
    port = serving.free_port()
    script = textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {str(ROOT)!r})
        from includes.lessons import serving
        service = serving.Service({tree_command(port)!r}, health_url="http://127.0.0.1:{port}/", timeout=60, grace=3)
        service.start()
        print(service.pgid, service.process.pid, flush=True)
        time.sleep(600)
    """)
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        pgid, supervisor = map(int, parent.stdout.readline().split())
        members = serving.group_members(pgid)
        assert len(members) == 2 and serving.http_ok(f"http://127.0.0.1:{port}/")
        parent.kill()
        parent.wait()
        assert group_gone(pgid), f"processes {serving.group_members(pgid)} outlived their parent"
        assert wait_until(lambda: not pid_alive(supervisor)), "the supervisor outlived its parent"
    finally:
        parent.kill()
        parent.stdout.close()


def test_the_supervisor_stops_the_group_on_sigterm_and_when_stdin_closes(tmp_path):
    for how in ("sigterm", "stdin"):
        port = serving.free_port()
        supervisor = subprocess.Popen([sys.executable, "-m", "includes.lessons.serving", "--exit-with-stdin",
                                       "--grace", "3", "--", *tree_command(port)],
                                      cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        try:
            line = supervisor.stdout.readline()
            assert line.startswith(serving.READY)
            pgid = int(line.split()[-1])
            assert wait_until(lambda: len(serving.group_members(pgid)) == 2)
            if how == "sigterm":
                supervisor.terminate()
            else:
                supervisor.stdin.close()  # what a dying parent does to the pipe
            assert supervisor.wait(timeout=30) == 128 + signal.SIGTERM
            assert not serving.group_members(pgid), how
        finally:
            supervisor.kill()
            supervisor.stdout.close()
            if supervisor.stdin and not supervisor.stdin.closed:
                supervisor.stdin.close()


def test_when_the_command_exits_its_leftovers_are_stopped_and_its_code_returned(tmp_path):
    marker = tmp_path / "leftover.pid"
    result = subprocess.run([sys.executable, "-m", "includes.lessons.serving", "--grace", "3", "--",
                             "bash", "-c", f"sleep 600 & echo $! > {marker}; exit 3"],
                            cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 3
    assert not pid_alive(int(marker.read_text()))  # the background sleep did not survive


def test_a_group_that_ignores_sigterm_is_killed_after_the_grace_period(tmp_path):
    port = serving.free_port()
    stubborn = ["bash", "-c", f"trap '' TERM; sleep 600 & exec {sys.executable} -c "
                f"\"import signal, http.server; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
                f"http.server.HTTPServer(('127.0.0.1', {port}), http.server.SimpleHTTPRequestHandler).serve_forever()\""]
    service = serving.Service(stubborn, health_url=f"http://127.0.0.1:{port}/", timeout=60, grace=1)
    service.start()
    members = service.members()
    started = time.monotonic()
    service.stop()
    assert service.left_behind == [] and not any(pid_alive(pid) for pid in members)
    assert time.monotonic() - started < 15


def test_a_killed_supervisor_is_cleaned_up_after_by_stop(tmp_path):
    service, _ = started_tree(tmp_path)
    members = service.members()
    service.process.kill()  # the supervisor dies without stopping anything
    service.process.wait()
    assert serving.group_members(service.pgid) == members
    service.stop()  # the launcher still knows the group and stops it
    assert service.left_behind == [] and not any(pid_alive(pid) for pid in members)


def test_a_command_that_fails_is_reported_with_its_last_output_lines(tmp_path):
    command = ["bash", "-c", "echo loading the model; echo 'Error: no such model' >&2; exit 1"]
    service = serving.Service(command, health_url=f"http://127.0.0.1:{serving.free_port()}/health",
                              timeout=60, log=tmp_path / "failing.log")
    with pytest.raises(RuntimeError) as error:
        service.start()
    message = str(error.value)
    assert "echo loading the model" in message and "exited with code 1" in message
    assert "loading the model\nError: no such model" in message
    assert service.process is None and not service.running


def test_a_server_that_never_answers_times_out_with_a_clear_error(tmp_path):
    command = ["bash", "-c", "echo still starting; sleep 600"]
    service = serving.Service(command, health_url=f"http://127.0.0.1:{serving.free_port()}/health",
                              timeout=2, log=tmp_path / "slow.log", grace=2)
    with pytest.raises(RuntimeError, match=r"did not answer within 2 seconds; its last output lines:\nstill starting"):
        service.start()
    assert service.left_behind == []


def test_a_missing_program_is_reported(tmp_path):
    service = serving.Service(["no-such-program-ml10"], health_url="http://127.0.0.1:9/health", timeout=30)
    with pytest.raises(RuntimeError, match="cannot start 'no-such-program-ml10': No such file"):
        service.start()
    with pytest.raises(ValueError):
        serving.Service([])


def test_the_service_is_gone_after_a_notebook_whose_later_cell_fails(tmp_path):
    """The way ML10 uses it: a kernel starts the server, a later cell raises, the run ends (nbclient
    shuts the kernel down, no cleanup cell runs), and no process of the server's group is left."""
    port = serving.free_port()
    pgid = int(run_until_a_cell_fails("from includes.lessons import serving\n"
                                      f"service = serving.Service({tree_command(port)!r}, "
                                      f"health_url='http://127.0.0.1:{port}/', timeout=60, grace=3).start()\n"
                                      "print(service.pgid)"))
    assert group_gone(pgid), f"processes {serving.group_members(pgid)} outlived the notebook"


class FakeScoringServer(http.server.BaseHTTPRequestHandler):
    """What MLflow's scoring server does with a dataframe_split body, for a model that sums its columns."""

    bodies = []

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        FakeScoringServer.bodies.append(body)
        split = body["dataframe_split"]
        if "bad" in split["columns"]:
            self.send_response(400)
            self.end_headers()
            self.wfile.write(b'{"error_code": "BAD_REQUEST", "message": "no such column"}')
            return
        answer = json.dumps({"predictions": [sum(row) for row in split["data"]]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args):
        pass


@pytest.fixture
def fake_server():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), FakeScoringServer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    FakeScoringServer.bodies = []
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_invoke_posts_a_dataframe_split_body(fake_server):
    df = pd.DataFrame({"a": [1.0, 2.0], "b": [10.0, 20.0]})
    assert serving.invoke(fake_server, df) == [11.0, 22.0]
    assert FakeScoringServer.bodies == [{"dataframe_split": {"columns": ["a", "b"], "data": [[1.0, 10.0], [2.0, 20.0]]}}]
    with pytest.raises(RuntimeError, match="answered 400.*no such column"):
        serving.invoke(fake_server, pd.DataFrame({"bad": [1.0]}))


def test_timed_requests_returns_one_latency_per_request(fake_server):
    df = pd.DataFrame({"a": [1.0, 2.0, 3.0]})
    latencies = serving.timed_requests(fake_server, df, n=7, rows_per_request=2)
    assert len(latencies) == 7 and all(0 < t < 30 for t in latencies)
    assert [body["dataframe_split"]["data"] for body in FakeScoringServer.bodies[:2]] == [[[1.0], [2.0]]] * 2
    with pytest.raises(ValueError):
        serving.timed_requests(fake_server, df, n=0)


def test_the_serve_command_stays_on_loopback_with_the_local_environment():
    command = serving.mlflow_serve_command("models:/m@champion", 5001)
    assert command[:3] == [sys.executable, "-m", "mlflow"] and command[3:5] == ["models", "serve"]
    assert command[command.index("--host") + 1] == "127.0.0.1"
    assert command[command.index("--env-manager") + 1] == "local"
    assert command[command.index("-m", 3) + 1] == "models:/m@champion"


def test_mlflow_serves_a_small_model_end_to_end(tmp_path):
    """The real thing with a tiny scikit-learn model (a Spark model's server takes most of a minute
    to start; ML10 itself serves one): health, a scoring request, and no process left."""
    import mlflow
    import numpy as np
    from sklearn.linear_model import LinearRegression

    X = pd.DataFrame({"x1": [0.0, 1.0, 2.0, 3.0], "x2": [1.0, 0.0, 1.0, 0.0]})
    model = LinearRegression().fit(X, 2 * X["x1"] + 3 * X["x2"] + 1)
    path = tmp_path / "model"
    mlflow.sklearn.save_model(model, path, input_example=X.head(2))
    port = serving.free_port()
    with serving.Service(serving.mlflow_serve_command(str(path), port), health_url=f"http://127.0.0.1:{port}/health",
                         timeout=300, log=tmp_path / "serve.log") as service:
        members = service.members()
        assert len(members) >= 2  # the CLI and the web server it started
        predictions = serving.invoke(f"http://127.0.0.1:{port}", pd.DataFrame({"x1": [4.0], "x2": [1.0]}))
        assert np.round(predictions, 6).tolist() == [12.0]
    assert service.left_behind == [] and not any(pid_alive(pid) for pid in members)
