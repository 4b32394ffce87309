"""A posts stream for the real-time analytics lessons (ML18, ML18L): a corpus and a replay server.

The case study this replaces read live tweets with API keys; a classroom has neither keys nor a
network. This module generates a deterministic corpus of social-media posts with the structure
that makes hashtag analytics interesting, and serves it like a live feed:

- :func:`generate` builds the corpus from a seed: a steady background of tags, three tags that
  trend and fade, two bursts, tags in mixed case (``#Spark``, ``#spark``, ``#SPARK``) and followed
  by punctuation (``#delta,``), posts without tags, and a few late posts whose event time lies
  well behind the stream (they arrive after a network delay). Posts are in arrival order.
- :class:`PostsServer` streams the corpus over TCP on 127.0.0.1 only, one JSON object per line,
  at a configurable rate: every client gets the whole corpus from the start (a client that
  disconnects ends only its own replay). Run it as ``python -m includes.lessons.posts --port
  9999`` (Ctrl-C stops it), or from a notebook with :class:`ServerProcess`, which starts it on a
  free port, waits until it answers, and stops it; the child also exits on its own when its
  parent dies (it watches its stdin pipe), so no server outlives a crashed kernel.
- :func:`write_files` writes the same corpus as JSON-lines files, one file per slice of arrival
  time, for the replayable, checkpointed part of the lesson (file source, ``maxFilesPerTrigger``).

The Spark side (:func:`hashtags`, :func:`windowed_counts`, :func:`socket_stream`,
:func:`file_stream`) holds the queries ML18 builds, for its lab's checks and the benchmark; it
imports pyspark only when called, so the server itself needs the standard library alone and
starts in a fraction of a second.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from includes.lessons.serving import end_child, read_line

HOST = "127.0.0.1"
START = datetime(2026, 3, 14, 9, 0, 0, tzinfo=timezone.utc)  # event time of the corpus' first second
FIELDS = ("id", "event_time", "user", "lang", "text")
# the stream as Spark should read it (DDL)
SCHEMA = "id LONG, event_time TIMESTAMP, user STRING, lang STRING, text STRING"

# steady tags: (tag as usually written, relative weight)
BACKGROUND = [("spark", 6), ("python", 5), ("data", 4), ("ml", 4), ("bigdata", 3), ("sql", 3),
              ("pandas", 2), ("kafka", 2), ("streaming", 2), ("ai", 3), ("cloud", 2), ("opensource", 1)]
# (tag, peak second, width in seconds, height in posts per second at the peak)
TRENDS = [("DeltaLake", 150.0, 45.0, 2.0), ("SparkSummit", 300.0, 60.0, 3.0), ("MLflow", 450.0, 40.0, 2.0)]
# (first second, last second, extra posts per second, the burst's tag)
BURSTS = [(200.0, 215.0, 6.0, "SparkSummit"), (420.0, 430.0, 5.0, "outage")]
# sentences: {t} is the first tag (or, without tags, a plain topic); further tags go at the end
TEMPLATES = ("Loving the new {t} release", "Anyone tried {t} for this?", "Slides from today's talk on {t} are up",
             "Hot take: {t} is underrated", "Reading about {t} this morning", "Finally migrated our jobs to {t}",
             "New benchmarks for {t}", "What's next for {t}?", "A thread about {t} (1/5)", "Live now: a demo of {t}",
             "Three lessons learned with {t}", "Quick tip for {t} users")
TOPICS = ("our pipeline", "the new laptop", "remote work", "this dataset", "the conference wifi", "coffee")
LANGS = [("en", 70), ("de", 10), ("fr", 10), ("es", 10)]
PUNCTUATION = ",.!?:;"


@dataclass(frozen=True)
class Post:
    id: int
    event_time: str  # ISO 8601 in UTC with milliseconds, e.g. 2026-03-14T09:02:31.250Z
    user: str
    lang: str
    text: str
    arrival: float  # seconds after START at which the post enters the stream (not sent)

    def line(self) -> str:
        """The post as the server sends it: one JSON object (without ``arrival``) and a newline."""
        return json.dumps({name: getattr(self, name) for name in FIELDS}, ensure_ascii=False) + "\n"


def iso_time(seconds: float) -> str:
    """The event-time text of ``seconds`` after :data:`START`: ISO 8601, UTC, milliseconds."""
    moment = START + timedelta(milliseconds=round(seconds * 1000))
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _written(tag: str, rng: random.Random) -> str:
    """A tag as people type it: mostly lower case, sometimes capitalised or shouted, sometimes
    with punctuation stuck to it."""
    form = rng.random()
    if form < 0.6:
        text = tag.lower()
    elif form < 0.85:
        text = tag[:1].upper() + tag[1:]
    else:
        text = tag.upper()
    return "#" + text + (rng.choice(PUNCTUATION) if rng.random() < 0.2 else "")


def generate(seed: int = 42, seconds: int = 600, base_rate: float = 3.0, untagged: float = 0.25,
             late_fraction: float = 0.02, late_delay: tuple[float, float] = (40.0, 120.0)) -> list[Post]:
    """The corpus: ``seconds`` of event time from :data:`START`, about ``base_rate`` background
    posts per second plus the trends and bursts, in arrival order, ids 0, 1, 2, ...

    ``untagged`` is the share of background posts without a tag; ``late_fraction`` of all posts
    arrive ``late_delay`` seconds (uniform) after their event time. Same arguments, same posts.
    """
    if seconds < 1 or base_rate <= 0:
        raise ValueError("seconds must be >= 1 and base_rate > 0")
    rng = random.Random(seed)
    users = [f"user_{i:03d}" for i in range(1, 201)]
    user_weights = [1.0 / (i ** 0.8) for i in range(1, 201)]  # a few very active users, a long tail
    tags, tag_weights = zip(*BACKGROUND)
    langs, lang_weights = zip(*LANGS)
    drafts = []  # (event second, tags)

    def poisson_times(second: int, rate: float) -> list[float]:
        count, threshold, product = 0, math.exp(-rate), rng.random()
        while product > threshold:  # Knuth's method: fine for the small rates used here
            count += 1
            product *= rng.random()
        return sorted(second + rng.random() for _ in range(count))

    for second in range(seconds):
        for moment in poisson_times(second, base_rate):
            chosen = [] if rng.random() < untagged else rng.choices(tags, tag_weights, k=rng.choice((1, 1, 2, 3)))
            drafts.append((moment, list(dict.fromkeys(chosen))))
        for tag, peak, width, height in TRENDS:
            rate = height * math.exp(-0.5 * ((second + 0.5 - peak) / width) ** 2)
            for moment in poisson_times(second, rate):
                extra = rng.choices(tags, tag_weights, k=1) if rng.random() < 0.4 else []
                drafts.append((moment, [tag, *extra]))
        for first, last, rate, tag in BURSTS:
            if first <= second < last:
                drafts.append((second + rng.random(), [tag]))  # at least one per burst second
                drafts.extend((moment, [tag]) for moment in poisson_times(second, rate))

    posts = []
    for moment, post_tags in drafts:
        delay = rng.uniform(*late_delay) if rng.random() < late_fraction else rng.uniform(0.0, 0.5)
        written = [_written(tag, rng) for tag in post_tags]
        template = rng.choice(TEMPLATES)
        text = " ".join([template.format(t=written[0] if written else rng.choice(TOPICS)), *written[1:]])
        posts.append((moment + delay, moment, rng.choices(users, user_weights)[0],
                      rng.choices(langs, lang_weights)[0], text))
    posts.sort(key=lambda p: (p[0], p[1]))
    return [Post(index, iso_time(moment), user, lang, text, round(arrival, 3))
            for index, (arrival, moment, user, lang, text) in enumerate(posts)]


def tags_of(text: str) -> list[str]:
    """The hashtags of a text, normalised as the lessons do (lower case, trailing punctuation
    removed): the reference the Spark code is checked against."""
    found = []
    for word in text.split():
        if word.startswith("#"):
            tag = word[1:].rstrip(PUNCTUATION).lower()
            if tag:
                found.append(tag)
    return found


def event_seconds(post: Post) -> float:
    """A post's event time in seconds after :data:`START`."""
    moment = datetime.strptime(post.event_time, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)
    return (moment - START).total_seconds()


def window_starts(seconds: float, length: float, slide: float) -> list[float]:
    """Starts (seconds after :data:`START`) of the sliding windows ``[start, start + length)``
    that contain ``seconds``, as Spark's ``window(col, length, slide)`` assigns them."""
    last = math.floor(seconds / slide) * slide
    return [last - i * slide for i in range(int(math.ceil(length / slide)) - 1, -1, -1)
            if last - i * slide + length > seconds]


def slices(posts: list[Post], slice_seconds: float) -> list[list[Post]]:
    """``posts`` grouped as :func:`write_files` writes them: one list per non-empty slice of
    arrival time, in order (each becomes one micro-batch with ``maxFilesPerTrigger=1``)."""
    grouped: dict[int, list[Post]] = {}
    for post in posts:
        grouped.setdefault(int(post.arrival // slice_seconds), []).append(post)
    return [grouped[key] for key in sorted(grouped)]


@dataclass
class WindowedCounts:
    """What a reference computation of windowed tag counts gives (see :func:`reference_counts`)."""

    counts: dict  # (window start in seconds after START, tag) -> count
    dropped: list  # (post id, tag, window start) of late rows the watermark dropped
    watermarks: list  # the watermark (seconds after START, None before the first) of each micro-batch


def reference_counts(batches: list[list[Post]], length: float = 20.0, slide: float = 10.0,
                     delay: float | None = None) -> WindowedCounts:
    """Tag counts per sliding window, computed in plain Python, to check Spark's answers.

    ``batches`` are the micro-batches in order (one list of posts each; pass ``[posts]`` for a
    batch computation over everything). Without ``delay`` nothing is dropped. With a watermark
    delay, Spark's rule for one stateful aggregation is applied: batch k runs with the eviction
    watermark ``W_k = (max event time of batches before k) - delay``, and it drops an input row
    of a window that ended at or before the watermark of the batch *before* it, ``W_(k-1)``
    (Spark keeps one watermark for late events and one for eviction; for a single aggregation the
    first lags one batch behind). Measured against Spark in tests/test_posts.py.
    """
    counts: dict = {}
    dropped, watermarks = [], []
    newest = None
    for batch in batches:
        late_watermark = watermarks[-1] if watermarks else None
        watermarks.append(None if delay is None or newest is None else newest - delay)
        for post in batch:
            seconds = event_seconds(post)
            for tag in tags_of(post.text):
                for start in window_starts(seconds, length, slide):
                    if late_watermark is not None and start + length <= late_watermark:
                        dropped.append((post.id, tag, start))
                    else:
                        counts[(start, tag)] = counts.get((start, tag), 0) + 1
            newest = seconds if newest is None else max(newest, seconds)
    return WindowedCounts(counts, dropped, watermarks)


# ------------------------------------------------------------------------------------------------
# The Spark side: the queries ML18 builds, shared with its lab's checks and the benchmark
# ------------------------------------------------------------------------------------------------

def hashtags(posts_df):
    """One row per (post, hashtag) of a DataFrame of posts: ``id, event_time, tag``, the tag in
    lower case without the ``#`` and without trailing punctuation (the Spark twin of :func:`tags_of`)."""
    from pyspark.sql import functions as F

    tags = F.regexp_extract_all(F.lower("text"), F.lit(r"#(\w+)"), F.lit(1))
    return posts_df.select("id", "event_time", F.explode(tags).alias("tag"))


def windowed_counts(posts_df, length: str = "20 seconds", slide: str = "10 seconds", watermark: str | None = None):
    """Posts per (sliding event-time window, tag): ``window, tag, count``; with ``watermark``
    (e.g. ``"30 seconds"``) late posts are bounded by ``withWatermark("event_time", watermark)``."""
    from pyspark.sql import functions as F

    tags_df = hashtags(posts_df)
    if watermark is not None:
        tags_df = tags_df.withWatermark("event_time", watermark)
    return tags_df.groupBy(F.window("event_time", length, slide), "tag").count()


def file_stream(spark, directory, files_per_trigger: int = 1):
    """The posts files of ``directory`` (:func:`write_files`) as a stream, ``files_per_trigger``
    files per micro-batch."""
    return (spark.readStream.schema(SCHEMA).option("maxFilesPerTrigger", files_per_trigger)
            .json(str(directory)))


def socket_stream(spark, host: str, port: int):
    """The posts a server sends (:class:`PostsServer`) as a stream of typed columns."""
    from pyspark.sql import functions as F

    raw_df = spark.readStream.format("socket").option("host", host).option("port", port).load()
    return raw_df.select(F.from_json("value", SCHEMA).alias("post")).select("post.*")


def counts_by_seconds(counts_df) -> dict:
    """``{(window start in seconds after START, tag): count}`` of a (batch) DataFrame of windowed
    counts, comparable with :attr:`WindowedCounts.counts`."""
    from pyspark.sql import functions as F

    # epoch seconds from Spark: collected datetimes would be in the Python process' local time zone
    rows = counts_df.select(F.col("window.start").cast("double").alias("start"), "tag", "count").collect()
    return {(row["start"] - START.timestamp(), row["tag"]): row["count"] for row in rows}


# ------------------------------------------------------------------------------------------------
# Files
# ------------------------------------------------------------------------------------------------

def write_files(posts: list[Post], directory: os.PathLike | str, slice_seconds: float = 30.0,
                prefix: str = "posts") -> list[Path]:
    """Write ``posts`` as JSON-lines files, one per ``slice_seconds`` of arrival time
    (``posts-000.jsonl``, ...), each staged under a hidden name, given the modification time
    ``replay.BASE_MTIME + index`` and renamed into place (see :mod:`includes.lessons.replay`),
    so a file stream reads them in arrival order. Returns the paths."""
    from includes.lessons.replay import BASE_MTIME

    if slice_seconds <= 0:
        raise ValueError(f"slice_seconds must be > 0, got {slice_seconds}")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for index, batch in enumerate(slices(posts, slice_seconds)):
        target = directory / f"{prefix}-{index:03d}.jsonl"
        staging = directory / f".{target.name}.tmp"
        staging.write_text("".join(post.line() for post in batch), encoding="utf-8")
        os.utime(staging, (BASE_MTIME + index, BASE_MTIME + index))
        os.replace(staging, target)
        written.append(target)
    return written


# ------------------------------------------------------------------------------------------------
# The server
# ------------------------------------------------------------------------------------------------

class PostsServer:
    """Serve ``posts`` on 127.0.0.1:``port`` (0: a free port) at ``rate`` posts per second, one
    thread per client; each client gets the whole corpus from the start, then the connection
    closes (``hold=True`` keeps it open, idle, until the client or the server goes)."""

    def __init__(self, posts: list[Post], port: int = 0, rate: float = 200.0, hold: bool = False):
        if rate <= 0:
            raise ValueError(f"rate must be > 0 posts per second, got {rate}")
        self.posts, self.rate, self.hold = posts, rate, hold
        self._stop = threading.Event()
        self._socket = socket.create_server((HOST, port))  # loopback only, never all interfaces
        self._socket.settimeout(0.2)
        self.port = self._socket.getsockname()[1]
        self.clients_served = 0
        self.replays_started: list[float] = []  # time.time() when each client's replay began
        self._threads: list[threading.Thread] = []

    @property
    def address(self) -> tuple[str, int]:
        return HOST, self.port

    def bound_address(self) -> tuple[str, int]:
        """The address the listening socket is bound to, as the operating system reports it."""
        return tuple(self._socket.getsockname()[:2])

    def serve_forever(self) -> None:
        """Accept clients until :meth:`stop` is called."""
        try:
            while not self._stop.is_set():
                try:
                    connection, _ = self._socket.accept()
                except socket.timeout:
                    continue
                except OSError:
                    break  # the listening socket was closed by stop()
                thread = threading.Thread(target=self._replay, args=(connection,), daemon=True)
                thread.start()
                self._threads = [t for t in self._threads if t.is_alive()] + [thread]
        finally:
            self._socket.close()

    def _replay(self, connection: socket.socket) -> None:
        interval = 1.0 / self.rate
        started = time.monotonic()
        self.replays_started.append(time.time())  # post i is sent at about this + i / rate
        try:
            with connection:
                for index, post in enumerate(self.posts):
                    delay = started + index * interval - time.monotonic()
                    if delay > 0 and self._stop.wait(delay):
                        return
                    if self._stop.is_set():
                        return
                    connection.sendall(post.line().encode("utf-8"))
                self.clients_served += 1
                while self.hold and not self._stop.wait(0.2):
                    pass
        except OSError:
            return  # the client went away (reset, broken pipe): only its replay ends

    def stop(self) -> None:
        self._stop.set()
        try:
            self._socket.close()
        except OSError:
            pass
        for thread in self._threads:
            thread.join(timeout=2)

    def __enter__(self) -> PostsServer:
        threading.Thread(target=self.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


READY = "posts server listening on"


class ServerProcess:
    """The server as a child process on a free loopback port, for notebooks::

        with posts.ServerProcess(seed=42, rate=500) as server:
            stream_df = spark.readStream.format("socket").option("host", server.host) \\
                .option("port", server.port).load()

    :meth:`start` returns once the server accepts connections; :meth:`stop` (also on leaving the
    ``with`` block) terminates it and waits. The child watches its stdin, a pipe from this
    process: when this process dies, even by SIGKILL, the pipe closes and the server exits.
    """

    def __init__(self, seed: int = 42, rate: float = 200.0, hold: bool = False, timeout: float = 30.0):
        self.seed, self.rate, self.hold, self.timeout = seed, rate, hold, timeout
        self.host, self.port, self.process = HOST, None, None
        self.returncode = None  # the exit code of the last server process, once stopped

    def start(self) -> ServerProcess:
        from includes.paths import COURSE_ROOT

        if self.process is not None:
            raise RuntimeError("the posts server is already running")
        command = [sys.executable, "-m", "includes.lessons.posts", "--port", "0", "--seed", str(self.seed),
                   "--rate", str(self.rate), "--exit-with-stdin"] + (["--hold"] if self.hold else [])
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(COURSE_ROOT), os.environ.get("PYTHONPATH", "")]))
        self.process = subprocess.Popen(command, cwd=COURSE_ROOT, env=env, stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, text=True)
        deadline = time.monotonic() + self.timeout
        line = read_line(self.process.stdout, self.timeout)
        if not line.startswith(READY):
            self.stop()
            raise RuntimeError(f"the posts server did not start (it said {line!r}); "
                               f"try: python -m includes.lessons.posts --port 0")
        self.port = int(line.rsplit(":", 1)[1])
        while True:  # it printed after listen(), but wait until a connection really succeeds
            try:
                socket.create_connection((self.host, self.port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"the posts server on {self.host}:{self.port} does not answer")
                time.sleep(0.05)
        return self

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> None:
        if self.process is None:
            return
        self.returncode = end_child(self.process, 10)
        self.process = None

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m includes.lessons.posts",
                                     description="Stream the course's posts corpus on 127.0.0.1, one JSON object a line.")
    parser.add_argument("--port", type=int, default=9999, help="TCP port on 127.0.0.1 (0: any free port)")
    parser.add_argument("--seed", type=int, default=42, help="corpus seed (same seed, same posts)")
    parser.add_argument("--rate", type=float, default=200.0, help="posts per second sent to each client")
    parser.add_argument("--hold", action="store_true", help="keep a connection open after the last post")
    parser.add_argument("--exit-with-stdin", action="store_true",
                        help="exit when stdin closes (the launcher's pipe: the server dies with its parent)")
    args = parser.parse_args(argv)
    try:
        server = PostsServer(generate(args.seed), port=args.port, rate=args.rate, hold=args.hold)
    except OSError as exc:
        print(f"cannot listen on {HOST}:{args.port}: {exc.strerror or exc}; pick another --port "
              "(0 picks a free one)", file=sys.stderr)
        return 2

    def stop(*_):
        server.stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    if args.exit_with_stdin:
        def watch():
            # os.read on the descriptor, not sys.stdin: a daemon thread blocked inside the buffered
            # reader's lock makes the interpreter's shutdown abort ("could not acquire lock")
            while os.read(sys.stdin.fileno(), 4096):
                pass
            server.stop()
        threading.Thread(target=watch, daemon=True).start()
    print(f"{READY} {HOST}:{server.port}", flush=True)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
