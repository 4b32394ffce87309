"""includes/lessons/posts.py: the posts corpus, its files, and the replay server (ML18, ML18L)."""

import json
import os
import socket
import subprocess
import sys
import textwrap
import time
from collections import Counter
from datetime import datetime
from pathlib import Path

import pytest

from includes.lessons import posts
from tests.conftest import pid_alive, run_until_a_cell_fails

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def corpus():
    return posts.generate(seed=42)


def event_seconds(post):
    return (datetime.fromisoformat(post.event_time.replace("Z", "+00:00")) - posts.START).total_seconds()


def read_all(port, limit=None, timeout=30):
    """Lines a client receives until the server closes the connection (or ``limit`` lines)."""
    lines = []
    with socket.create_connection((posts.HOST, port), timeout=timeout) as client:
        reader = client.makefile("r", encoding="utf-8")
        for line in reader:
            lines.append(line)
            if limit and len(lines) >= limit:
                break
    return lines


def test_same_seed_same_posts_other_seed_other_posts(corpus):
    assert posts.generate(seed=42) == corpus
    assert posts.generate(seed=7) != corpus
    assert [p.id for p in corpus] == list(range(len(corpus)))
    assert all(a.arrival <= b.arrival for a, b in zip(corpus, corpus[1:]))  # arrival order


def test_lines_are_json_with_the_schema_fields(corpus):
    record = json.loads(corpus[0].line())
    assert list(record) == list(posts.FIELDS) and corpus[0].line().endswith("\n")
    assert [field.split()[0] for field in posts.SCHEMA.split(", ")] == list(posts.FIELDS)
    assert record["event_time"].endswith("Z") and len(record["event_time"]) == len("2026-03-14T09:00:00.000Z")


def test_the_corpus_has_the_structure_the_lesson_needs(corpus):
    raw = Counter(word.rstrip(posts.PUNCTUATION) for p in corpus for word in p.text.split() if word.startswith("#"))
    assert {"#spark", "#Spark", "#SPARK"} <= set(raw)  # mixed case
    assert any(word[-1] in posts.PUNCTUATION for p in corpus for word in p.text.split() if word.startswith("#"))
    untagged = sum(1 for p in corpus if not posts.tags_of(p.text)) / len(corpus)
    assert 0.08 < untagged < 0.3
    # late posts: event time far behind the newest event time already in the stream
    newest, late = float("-inf"), 0
    for post in corpus:
        seconds = event_seconds(post)
        late += seconds < newest - 30
        newest = max(newest, seconds)
    assert 10 < late < 0.05 * len(corpus)
    # a trend rises and fades: #sparksummit is rare at the start and the end, common near its peak
    per_minute = Counter(int(event_seconds(p) // 60) for p in corpus if "sparksummit" in posts.tags_of(p.text))
    assert per_minute[5] > 10 * max(per_minute[0], per_minute[9], 1)
    # a burst: the seconds of the outage burst carry many more #outage posts than any other ten seconds
    outage = Counter(int(event_seconds(p) // 10) for p in corpus if "outage" in posts.tags_of(p.text))
    assert outage.most_common(1)[0][0] == 42 and set(outage) <= {42}


def test_tags_are_normalised_like_the_lessons_do():
    assert posts.tags_of("Loving #Spark, and #DELTALAKE! #ml: #") == ["spark", "deltalake", "ml"]
    assert posts.tags_of("no tags here") == []


def test_files_hold_the_corpus_in_arrival_slices(tmp_path, corpus):
    from includes.lessons.replay import BASE_MTIME

    paths = posts.write_files(corpus, tmp_path, slice_seconds=60)
    assert [p.name for p in paths] == [f"posts-{i:03d}.jsonl" for i in range(len(paths))]
    assert sorted(os.listdir(tmp_path)) == [p.name for p in paths]  # no staging file left
    assert [int(p.stat().st_mtime) for p in paths] == [BASE_MTIME + i for i in range(len(paths))]
    lines = [line for p in paths for line in p.read_text(encoding="utf-8").splitlines(keepends=True)]
    assert lines == [post.line() for post in corpus]
    first_file = paths[0].read_text(encoding="utf-8").splitlines()
    assert all(next(p for p in corpus if p.id == json.loads(line)["id"]).arrival < 60 for line in first_file)
    with pytest.raises(ValueError, match="slice_seconds"):
        posts.write_files(corpus, tmp_path, slice_seconds=0)


def test_server_sends_every_client_the_whole_corpus(corpus):
    small = corpus[:300]
    with posts.PostsServer(small, rate=20000) as server:
        assert server.address[0] == "127.0.0.1"
        import concurrent.futures

        with concurrent.futures.ThreadPoolExecutor(2) as pool:  # two clients at once
            first, second = pool.map(lambda _: read_all(server.port), range(2))
        assert first == second == [p.line() for p in small]


def test_a_client_that_disconnects_does_not_hurt_the_server(corpus):
    small = corpus[:200]
    with posts.PostsServer(small, rate=500) as server:
        for _ in range(3):  # hang up early, three times
            assert len(read_all(server.port, limit=5)) == 5
        with socket.create_connection((posts.HOST, server.port)) as rude:
            rude.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")  # RST on close
        server.rate = 20000
        assert read_all(server.port) == [p.line() for p in small]


def test_rate_limits_the_stream(corpus):
    with posts.PostsServer(corpus[:21], rate=50) as server:
        started = time.monotonic()
        assert len(read_all(server.port)) == 21
        assert time.monotonic() - started >= 0.35  # 20 intervals of 20 ms, whatever the machine's speed


def test_server_listens_on_loopback_only():
    """The listening socket is bound to 127.0.0.1 (not 0.0.0.0); where the machine has another
    address, a connection to it is refused too."""
    with posts.PostsServer(posts.generate(seconds=5), rate=1000) as server:
        assert server.bound_address() == ("127.0.0.1", server.port)
        probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            probe.connect(("10.255.255.255", 1))  # no packet is sent: this only picks a local interface
            own_address = probe.getsockname()[0]
        except OSError:
            own_address = None
        finally:
            probe.close()
        if own_address is not None and not own_address.startswith("127."):
            with pytest.raises(OSError):
                socket.create_connection((own_address, server.port), timeout=2).close()


def wait_gone(pid, seconds=10):
    deadline = time.monotonic() + seconds
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    return not pid_alive(pid)


def test_server_process_starts_answers_and_stops(corpus):
    with posts.ServerProcess(rate=50000) as server:
        pid = server.process.pid
        assert server.running and server.host == "127.0.0.1"
        assert read_all(server.port) == [p.line() for p in corpus]
    assert not server.running and wait_gone(pid)
    assert server.returncode == 0  # SIGTERM is handled: the server shuts down cleanly


def test_server_exits_cleanly_when_its_stdin_closes():
    server = posts.ServerProcess(rate=1000, hold=True).start()
    process = server.process
    process.stdin.close()  # what a dying parent does to the pipe
    assert process.wait(timeout=10) == 0
    server.stop()


def test_no_server_outlives_its_parent(tmp_path):
    """A kernel that dies (SIGKILL: no cleanup code runs) takes its server with it."""
    script = textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {str(ROOT)!r})
        from includes.lessons import posts
        server = posts.ServerProcess(rate=1, hold=True).start()
        print(server.process.pid, server.port, flush=True)
        time.sleep(600)
    """)
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        child_pid, port = map(int, parent.stdout.readline().split())
        assert pid_alive(child_pid)
        socket.create_connection((posts.HOST, port), timeout=5).close()
        parent.kill()
        parent.wait()
        assert wait_gone(child_pid), f"the posts server {child_pid} outlived its parent"
    finally:
        parent.kill()
        parent.stdout.close()


def test_cli_says_what_to_do_when_the_port_is_taken():
    with socket.create_server((posts.HOST, 0)) as taken:
        port = taken.getsockname()[1]
        result = subprocess.run([sys.executable, "-m", "includes.lessons.posts", "--port", str(port)],
                                cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr and "--port" in result.stderr


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="rate"):
        posts.PostsServer([], rate=0)
    with pytest.raises(ValueError, match="seconds"):
        posts.generate(seconds=0)


def test_the_server_is_gone_after_a_notebook_whose_cell_fails(tmp_path):
    """The way a lesson uses it: a kernel starts the server, a later cell raises, the run ends
    (nbclient shuts the kernel down, no cleanup cell runs) - and no server process is left."""
    pid = int(run_until_a_cell_fails("from includes.lessons import posts\n"
                                     "server = posts.ServerProcess(rate=1, hold=True).start()\n"
                                     "print(server.process.pid)"))
    assert wait_gone(pid), f"the posts server {pid} outlived the notebook"


def make_post(post_id, event, arrival, text):
    return posts.Post(post_id, posts.iso_time(event), "u", "en", text, arrival)


def test_window_starts_match_sparks_sliding_windows():
    assert posts.window_starts(25.0, 20, 10) == [10.0, 20.0]
    assert posts.window_starts(20.0, 20, 10) == [10.0, 20.0]  # a window is [start, start + length)
    assert posts.window_starts(19.999, 20, 10) == [0.0, 10.0]
    assert posts.window_starts(7.0, 20, 10) == [-10.0, 0.0]
    assert posts.window_starts(7.0, 10, 10) == [0.0]  # tumbling


def test_reference_counts_without_watermark_count_everything():
    batch = [make_post(0, 5.0, 5.0, "#Spark, #ml"), make_post(1, 12.0, 12.0, "#spark")]
    result = posts.reference_counts([batch], length=20, slide=10)
    assert result.counts == {(-10.0, "spark"): 1, (0.0, "spark"): 2, (0.0, "ml"): 1, (-10.0, "ml"): 1,
                             (10.0, "spark"): 1}
    assert result.dropped == [] and result.watermarks == [None]


def test_reference_counts_drop_with_the_previous_batchs_watermark():
    """A late row is dropped only if its window ended at or before the watermark of the batch
    before (Spark's watermark for late events lags the eviction watermark by one batch)."""
    late = make_post(9, 31.0, 200.0, "#late")  # written at 31 s, windows [20, 40) and [30, 50)
    batches = [[make_post(0, 100.0, 100.0, "#a")], [make_post(1, 130.0, 130.0, "#a")], [late]]
    result = posts.reference_counts(batches, length=20, slide=10, delay=60)
    # watermarks: batch 0 none; batch 1: 100 - 60 = 40; batch 2: 130 - 60 = 70
    assert result.watermarks == [None, 40.0, 70.0]
    # batch 2 judges lateness by batch 1's watermark, 40: [20, 40) ended at 40 -> dropped, [30, 50) kept
    assert result.dropped == [(9, "late", 20.0)]
    assert result.counts[(30.0, "late")] == 1 and (20.0, "late") not in result.counts
    # the same post one batch earlier is judged by batch 0's watermark (none): kept in both windows
    early = posts.reference_counts([batches[0], [late]], length=20, slide=10, delay=60)
    assert early.dropped == [] and early.counts[(20.0, "late")] == 1


def test_slices_group_by_arrival_like_the_files():
    corpus = posts.generate(seconds=120)
    groups = posts.slices(corpus, 30)
    assert [p for group in groups for p in group] == corpus
    assert all(int(p.arrival // 30) == int(group[0].arrival // 30) for group in groups for p in group)


def test_cli_serves_the_feed_and_ctrl_c_stops_it():
    """What the README promises: `python -m includes.lessons.posts --port N` serves the whole
    feed to a client, and Ctrl-C (SIGINT) ends it cleanly."""
    import signal

    process = subprocess.Popen([sys.executable, "-m", "includes.lessons.posts", "--port", "0", "--rate", "50000"],
                               cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        line = process.stdout.readline()
        assert line.startswith(posts.READY + " 127.0.0.1:")
        port = int(line.rsplit(":", 1)[1])
        assert read_all(port) == [p.line() for p in posts.generate(seed=42)]
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=10) == 0
    finally:
        process.kill()
        process.stdout.close()
