"""Tests of includes/fsutil.py: the lock, the build-aside-and-rename, the clean-up of leftovers."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from includes import fsutil  # noqa: E402

TIMEOUT = 30  # seconds: upper bound of every wait in these tests


def make_target(parent: Path, name: str = "data") -> Path:
    target = parent / name
    target.mkdir()
    (target / "old.txt").write_text("old")
    return target


def siblings(target: Path) -> list[str]:
    return sorted(p.name for p in target.parent.iterdir())


# ------------------------------------------------------------------------------------------
# build_into_place
# ------------------------------------------------------------------------------------------


def test_build_gets_an_empty_staging_folder_next_to_the_target(tmp_path: Path) -> None:
    seen: list[Path] = []

    def build(staging: Path) -> None:
        seen.append(staging)
        assert staging.is_dir() and not any(staging.iterdir())
        (staging / "new.txt").write_text("new")

    target = tmp_path / "data"
    assert fsutil.build_into_place(target, build, staging_prefix=".building-") == target
    assert seen == [tmp_path / f".building-data-{os.getpid()}"]
    assert (target / "new.txt").read_text() == "new"
    assert siblings(target) == ["data"]


def test_build_replaces_an_existing_target(tmp_path: Path) -> None:
    target = make_target(tmp_path)
    (tmp_path / f".staging-data-{os.getpid()}").mkdir()  # a stale staging folder of this pid
    (tmp_path / f".staging-data-{os.getpid()}" / "stale").write_text("x")

    def build(staging: Path) -> None:
        assert not any(staging.iterdir())
        assert (target / "old.txt").read_text() == "old"  # untouched while building
        (staging / "new.txt").write_text("new")

    fsutil.build_into_place(target, build)
    assert sorted(p.name for p in target.iterdir()) == ["new.txt"]
    assert siblings(target) == ["data"]  # no .staging-* or .old-* left


@pytest.mark.parametrize("error", [RuntimeError("boom"), KeyboardInterrupt()])
def test_failing_build_leaves_the_old_target_and_no_staging(tmp_path: Path, error: BaseException) -> None:
    target = make_target(tmp_path)

    def build(staging: Path) -> None:
        (staging / "half.txt").write_text("half")
        raise error

    with pytest.raises(type(error)):
        fsutil.build_into_place(target, build)
    assert sorted(p.name for p in target.iterdir()) == ["old.txt"]
    assert (target / "old.txt").read_text() == "old"
    assert siblings(target) == ["data"]


def test_failing_build_without_a_target_leaves_nothing(tmp_path: Path) -> None:
    def build(staging: Path) -> None:
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        fsutil.build_into_place(tmp_path / "data", build)
    assert list(tmp_path.iterdir()) == []


def test_failed_rename_puts_the_old_target_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = make_target(tmp_path)
    real_rename = os.rename

    def rename(src: os.PathLike | str, dst: os.PathLike | str) -> None:
        if Path(src).name.startswith(".staging-"):
            raise OSError("rename failed")
        real_rename(src, dst)

    monkeypatch.setattr(os, "rename", rename)
    with pytest.raises(OSError, match="rename failed"):
        fsutil.build_into_place(target, lambda staging: (staging / "new.txt").write_text("new"))
    assert sorted(p.name for p in target.iterdir()) == ["old.txt"]
    assert siblings(target) == ["data"]


# ------------------------------------------------------------------------------------------
# Locks
# ------------------------------------------------------------------------------------------


def test_try_lock_is_exclusive_until_the_file_is_closed(tmp_path: Path) -> None:
    lock = tmp_path / ".x.lock"
    first = fsutil.try_lock(lock)
    assert first is not None
    assert fsutil.try_lock(lock) is None  # another open file, even in this process
    first.close()
    second = fsutil.try_lock(lock)
    assert second is not None
    second.close()


HOLD_LOCK = """
import sys
from includes import fsutil
handle = fsutil.try_lock(sys.argv[1])
print("held" if handle else "busy", flush=True)
sys.stdin.readline()
"""


def test_another_process_holding_the_lock(tmp_path: Path) -> None:
    lock = tmp_path / ".x.lock"
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(lock)], cwd=REPO, text=True,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(REPO)})
    waited: list[bool] = []

    def on_wait() -> None:  # the lock is busy: let the holder finish
        waited.append(True)
        holder.stdin.close()

    safety_net = threading.Timer(TIMEOUT, holder.kill)  # if on_wait is never called
    safety_net.start()
    try:
        assert holder.stdout.readline().strip() == "held"
        assert fsutil.try_lock(lock) is None
        with fsutil.exclusive_lock(lock, on_wait=on_wait):  # waits until the holder exits
            assert waited and holder.wait(TIMEOUT) == 0
    finally:
        safety_net.cancel()
        if holder.poll() is None:
            holder.kill()
        holder.wait(TIMEOUT)
        holder.stdout.close()


def test_exclusive_lock_makes_a_second_thread_wait(tmp_path: Path) -> None:
    lock = tmp_path / ".x.lock"
    waiting, inside, events = threading.Event(), threading.Event(), []

    def second() -> None:
        with fsutil.exclusive_lock(lock, on_wait=waiting.set):
            events.append("second in")
            inside.set()

    with fsutil.exclusive_lock(lock, on_wait=lambda: events.append("first waited")):
        worker = threading.Thread(target=second, daemon=True)
        worker.start()
        assert waiting.wait(TIMEOUT), "on_wait was not called while the lock was busy"
        assert not inside.wait(0.2), "the second holder got in while the first held the lock"
        events.append("first out")
    assert inside.wait(TIMEOUT)
    worker.join(TIMEOUT)
    assert events == ["first out", "second in"]
    with fsutil.exclusive_lock(lock, on_wait=lambda: pytest.fail("the lock was not released")):
        pass


# ------------------------------------------------------------------------------------------
# remove_leftovers
# ------------------------------------------------------------------------------------------


def test_remove_leftovers_deletes_only_the_prefixed_children(tmp_path: Path) -> None:
    (tmp_path / ".staging-a-1" / "deep").mkdir(parents=True)
    (tmp_path / ".staging-a-1" / "deep" / "f").write_text("x")
    (tmp_path / ".old-a-2").mkdir()
    (tmp_path / ".staging-file").write_text("x")
    keep = ["a", ".install.lock", "data.staging-1", ".other"]
    (tmp_path / "a").mkdir()
    for name in keep[1:]:
        (tmp_path / name).write_text("keep")
    assert fsutil.remove_leftovers(tmp_path) == [".old-a-2", ".staging-a-1", ".staging-file"]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(keep)
    assert fsutil.remove_leftovers(tmp_path, [".oth"]) == [".other"]
    assert fsutil.remove_leftovers(tmp_path) == []


def test_remove_leftovers_does_not_follow_symlinks(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "precious").write_text("x")
    root = tmp_path / "root"
    root.mkdir()
    (root / ".staging-link").symlink_to(outside, target_is_directory=True)
    assert fsutil.remove_leftovers(root) == [".staging-link"]
    assert (outside / "precious").is_file() and not list(root.iterdir())


def test_fsutil_is_a_leaf_module() -> None:
    source = (REPO / "includes" / "fsutil.py").read_text(encoding="utf-8")
    assert "from includes" not in source and "import includes" not in source
