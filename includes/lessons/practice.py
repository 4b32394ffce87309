"""What MLE07 (Best Practices for Spark ML) measures: the running application's REST API, physical
plans reduced to their operators, and a Delta table's files with their column statistics.

- :class:`SparkStatus` reads the Spark UI's REST API (``<ui>/api/v1/applications/<app id>/...``) of
  the session it is given: the stages a group of jobs ran, each stage's task metrics (records read,
  bytes spilled). The status store is filled by a listener that runs *after* the jobs, so every
  read waits until what it asks for is complete.
- :func:`outline` / :func:`plan_outline` turn a physical plan's tree string into its operators
  (join strategy, exchange kind), without expression ids or file paths, so that a notebook can
  print a plan that is the same on every run and every machine.
- :func:`delta_files` replays a Delta table's JSON commits (adds minus removes) and returns the
  table's current files with the min/max statistics Delta keeps per column; :func:`files_that_may_match`
  is the data-skipping rule: a file whose [min, max] of a column excludes a value cannot hold it.
"""

from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# ------------------------------------------------------------------------------------------------
# The REST API of the running application


class SparkStatusError(RuntimeError):
    """The Spark UI's REST API did not answer, or did not report what was asked for in time."""


class SparkStatus:
    """The REST API of one running Spark application (its UI must be enabled, the default)."""

    def __init__(self, spark, timeout: float = 30.0):
        self.sc = spark.sparkContext
        url = self.sc.uiWebUrl
        if not url:
            raise SparkStatusError("this session has no Spark UI (spark.ui.enabled is false): start it with the UI on")
        self.base = f"{url}/api/v1/applications/{self.sc.applicationId}"
        self.timeout = timeout

    def get(self, path: str) -> Any:
        """GET ``<base>/<path>`` as JSON."""
        try:
            with urllib.request.urlopen(f"{self.base}/{path}", timeout=10) as response:
                return json.load(response)
        except (urllib.error.URLError, OSError) as exc:
            raise SparkStatusError(f"the Spark UI's REST API did not answer for {path!r}: {exc}") from None

    def _wait(self, what: str, probe: Callable[[], Any]) -> Any:
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                value = probe()
            except SparkStatusError:
                value = None
            if value is not None:
                return value
            if time.monotonic() > deadline:
                raise SparkStatusError(f"the REST API did not report {what} within {self.timeout:.0f} s")
            time.sleep(0.1)

    def run(self, group: str, action: Callable[[], Any]) -> GroupRun:
        """Run ``action()`` as the job group ``group``: its result, the ids of the jobs it started
        and of the stages those jobs ran (skipped stages, whose shuffle output was reused, left out)."""
        self.sc.setJobGroup(group, group)
        try:
            result = action()
        finally:
            self.sc.setLocalProperty("spark.jobGroup.id", None)
            self.sc.setLocalProperty("spark.job.description", None)
        tracker = self.sc.statusTracker()
        jobs = sorted(tracker.getJobIdsForGroup(group))
        stage_ids = sorted(stage for job in jobs for stage in tracker.getJobInfo(job).stageIds)
        ran = [stage for stage in stage_ids if self.stage(stage, allow_skipped=True)["status"] == "COMPLETE"]
        return GroupRun(result, jobs, ran)

    def stage(self, stage_id: int, allow_skipped: bool = False) -> dict:
        """The stage's summary (numTasks, shuffleReadRecords, memoryBytesSpilled, ...), once complete."""
        def probe():
            attempts = self.get(f"stages/{stage_id}")
            done = [a for a in attempts if a["status"] == "COMPLETE" or (allow_skipped and a["status"] == "SKIPPED")]
            return done[-1] if done else None
        return self._wait(f"stage {stage_id} as complete", probe)

    def tasks(self, stage_id: int) -> list[dict]:
        """Every successful task of the stage's last complete attempt, with its metrics, by index."""
        summary = self.stage(stage_id)

        def probe():
            tasks = self.get(f"stages/{stage_id}/{summary['attemptId']}/taskList?length={summary['numTasks'] + 100}")
            ok = [t for t in tasks if t["status"] == "SUCCESS" and "taskMetrics" in t]
            return sorted(ok, key=lambda t: t["index"]) if len(ok) >= summary["numTasks"] else None
        return self._wait(f"the {summary['numTasks']} tasks of stage {stage_id}", probe)

    def shuffle_records_per_task(self, stage_id: int) -> list[int]:
        """Shuffle records each task of the stage read, by task index."""
        return [t["taskMetrics"]["shuffleReadMetrics"]["recordsRead"] for t in self.tasks(stage_id)]

    def storage(self) -> list[dict]:
        """The cached RDDs / DataFrames (name, partitions cached, bytes in memory and on disk)."""
        return self.get("storage/rdd")

    def sql_metrics(self, job_id: int) -> dict[str, dict[str, str]]:
        """The SQL metrics of the query that ran job ``job_id``, as {node name: {metric: value}}
        (nodes of one name merged), once the query is reported complete."""
        def probe():
            for execution in self.get("sql?details=true&length=1000"):
                if job_id in execution.get("successJobIds", []) + execution.get("runningJobIds", []):
                    return execution if execution["status"] == "COMPLETED" else None
            return None
        execution = self._wait(f"the completed query of job {job_id}", probe)
        metrics: dict[str, dict[str, str]] = {}
        for node in execution["nodes"]:
            metrics.setdefault(node["nodeName"], {}).update({m["name"]: m["value"] for m in node.get("metrics", [])})
        return metrics


@dataclass
class GroupRun:
    """What :meth:`SparkStatus.run` ran: the action's result, its job ids and the stages that ran."""

    result: Any
    jobs: list[int]
    stages: list[int]


@contextmanager
def spark_conf(spark, settings: Mapping[str, Any]) -> Iterator[None]:
    """Set SQL options for the ``with`` block, then restore each to what it was (or unset it)."""
    missing = object()
    before = {key: spark.conf.get(key, None) if spark.conf.isModifiable(key) else missing for key in settings}
    for key, value in before.items():
        if value is missing:
            raise ValueError(f"{key} cannot be changed in a running session: set it when the session starts")
    try:
        for key, value in settings.items():
            spark.conf.set(key, str(value).lower() if isinstance(value, bool) else str(value))
        yield
    finally:
        for key, value in before.items():
            if value is None:
                spark.conf.unset(key)
            else:
                spark.conf.set(key, value)


def balance(records: list[int]) -> str:
    """A one-line summary of how evenly records spread over tasks."""
    ordered = sorted(records)
    median = ordered[len(ordered) // 2]
    ratio = ordered[-1] / median if median else float("inf")
    return f"{len(ordered)} tasks, max {ordered[-1]}, median {median}, max/median {ratio:.1f}"


# ------------------------------------------------------------------------------------------------
# Physical plans, reduced to their operators

_PREFIX = re.compile(r"^(?P<indent>(?:[ |]|:(?!- ))*)(?P<branch>[+:]- )?(?:\*\(\d+\) )?(?P<node>\S.*)$")
_JOIN_TYPES = ("Inner", "LeftOuter", "RightOuter", "FullOuter", "LeftSemi", "LeftAnti", "Cross")


def _operator(node: str) -> str:
    name = re.match(r"\w*", node).group() or node.split(" ", 1)[0]
    if name.endswith("Join"):
        details = [word.strip(",") for word in node.split() if word.strip(",") in _JOIN_TYPES + ("BuildLeft", "BuildRight")]
        return " ".join([name, *details])
    if name == "Exchange":
        kind = node.split(" ", 2)[1] if " " in node else ""
        return f"Exchange {kind.split('(')[0]}".strip()
    if name in ("AdaptiveSparkPlan", "ResultQueryStage", "ShuffleQueryStage", "BroadcastQueryStage", "TableCacheQueryStage"):
        return name
    if name.startswith("InMemoryTableScan"):
        return "InMemoryTableScan"
    if name == "FileScan" or name.startswith("Scan"):
        fmt = node.split(" ", 2)[1] if " " in node else ""
        pushed = re.search(r"PushedFilters: \[([^\]]*)\]", node)
        text = f"{name} {fmt}".strip()
        if pushed and pushed.group(1):
            text += " PushedFilters: [" + re.sub(r"#\d+L?", "", pushed.group(1)) + "]"
        return text
    return name


def outline(tree_string: str) -> str:
    """The operators of a physical plan's ``treeString()``, one per line, indented as in the tree."""
    lines = []
    for line in tree_string.splitlines():
        if not line.strip() or line.lstrip().startswith(("Subqueries", "Output")):
            continue
        match = _PREFIX.match(line)
        if not match:
            continue
        depth = len(match.group("indent")) + (3 if match.group("branch") else 0)
        lines.append(" " * depth + _operator(match.group("node")))
    return "\n".join(lines)


def plan_outline(df) -> str:
    """:func:`outline` of the DataFrame's executed physical plan."""
    return outline(df._jdf.queryExecution().executedPlan().treeString())


# ------------------------------------------------------------------------------------------------
# A Delta table's files and their statistics


@dataclass(frozen=True)
class DeltaFile:
    """One data file of a Delta table's current version, with Delta's per-column statistics."""

    path: str
    size: int
    records: int | None
    minimum: dict = field(default_factory=dict, compare=False)
    maximum: dict = field(default_factory=dict, compare=False)


def delta_files(table_path: str | Path) -> list[DeltaFile]:
    """The table's current files, by replaying every JSON commit of ``_delta_log`` in order.

    Delta writes one JSON file per commit (``00000000000000000000.json``, ...), each line an action;
    ``add`` puts a file into the table, ``remove`` takes it out (OPTIMIZE removes the small files it
    rewrote). Checkpoints only summarise these commits, so replaying the JSON files gives the same
    set while they are kept (30 days by default)."""
    log_dir = Path(table_path) / "_delta_log"
    commits = sorted(log_dir.glob("[0-9]" * 20 + ".json"))
    if not commits:
        raise FileNotFoundError(f"{log_dir} holds no Delta commit: is {table_path} a Delta table?")
    versions = [int(c.stem) for c in commits]
    if versions != list(range(versions[0], versions[0] + len(versions))) or versions[0] != 0:
        raise ValueError(f"{log_dir}: the JSON commits are not 0..{versions[-1]} without gaps "
                         "(old ones were cleaned up): read the table's checkpoint instead")
    files: dict[str, DeltaFile] = {}
    for commit in commits:
        for line in commit.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            action = json.loads(line)
            if "add" in action:
                add = action["add"]
                stats = json.loads(add["stats"]) if add.get("stats") else {}
                files[add["path"]] = DeltaFile(add["path"], int(add["size"]), stats.get("numRecords"),
                                               stats.get("minValues", {}), stats.get("maxValues", {}))
            elif "remove" in action:
                files.pop(action["remove"]["path"], None)
    return sorted(files.values(), key=lambda f: f.path)


def files_that_may_match(files: list[DeltaFile], column: str, value: Any) -> list[DeltaFile]:
    """Data skipping for ``column = value``: the files whose [min, max] of the column contains the
    value (a file without statistics for the column may hold anything, so it is kept)."""
    kept = []
    for f in files:
        low, high = f.minimum.get(column), f.maximum.get(column)
        if low is None or high is None or low <= value <= high:
            kept.append(f)
    return kept
