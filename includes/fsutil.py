"""Lock, build in a staging folder, rename into place.

The course writes shared folders (an installed dataset, the shared Delta table, a lesson's
working directory) from processes that may run at the same time. These helpers give each
writer an exclusive ``flock`` and let it build a folder aside, so a reader never sees a partial
one and an interrupted writer leaves only leftovers that :func:`remove_leftovers` deletes.

Standard library only; imports nothing from the ``includes`` package.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, Any

STAGING_PREFIX = ".staging-"
OLD_PREFIX = ".old-"


def try_lock(lock_path: os.PathLike | str) -> IO[str] | None:
    """Take an exclusive flock on ``lock_path`` without waiting.

    Returns the open lock file (the lock lasts while it stays open), or None when another open
    file (another process, or another open() in this one) holds the lock.
    """
    handle = open(lock_path, "a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        return None
    return handle


@contextlib.contextmanager
def exclusive_lock(lock_path: os.PathLike | str, on_wait: Callable[[], Any] | None = None) -> Iterator[IO[str]]:
    """Hold an exclusive flock on ``lock_path`` for the ``with`` block.

    When the lock is busy, ``on_wait()`` is called (to say why nothing happens), then this waits.
    """
    handle = try_lock(lock_path)
    if handle is None:
        if on_wait is not None:
            on_wait()
        handle = open(lock_path, "a+")
        fcntl.flock(handle, fcntl.LOCK_EX)
    with handle:  # closing the file releases the lock
        yield handle


def remove(path: os.PathLike | str) -> None:
    """Delete a file, symlink or folder tree; no error when it is absent."""
    path = Path(path)
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def remove_leftovers(root: os.PathLike | str, prefixes: Iterable[str] = (STAGING_PREFIX, OLD_PREFIX)) -> list[str]:
    """Delete the children of ``root`` whose names start with one of ``prefixes``; return their names.

    Only safe while holding the lock that the writers of those folders take.
    """
    prefixes = tuple(prefixes)
    removed = sorted(child.name for child in Path(root).iterdir() if child.name.startswith(prefixes))
    for name in removed:
        remove(Path(root) / name)
    return removed


def build_into_place(
    target: os.PathLike | str, build: Callable[[Path], Any], staging_prefix: str = STAGING_PREFIX
) -> Path:
    """Build a folder aside, then rename it to ``target``; return ``target``.

    ``build(staging)`` fills the empty folder ``<parent>/<staging_prefix><name>-<pid>``. Once it
    returns, an existing ``target`` is renamed to ``<parent>/.old-<name>-<pid>``, the staging
    folder takes its place and the old copy is deleted. If anything fails (or is interrupted),
    the staging folder is removed and ``target`` is left as it was. Callers hold a lock.
    """
    target = Path(target)
    staging = target.with_name(f"{staging_prefix}{target.name}-{os.getpid()}")
    old = target.with_name(f"{OLD_PREFIX}{target.name}-{os.getpid()}")
    remove(staging)
    remove(old)
    staging.mkdir()
    try:
        build(staging)
        had_target = target.exists() or target.is_symlink()
        if had_target:
            os.rename(target, old)
        try:
            os.rename(staging, target)
        except BaseException:
            if had_target:
                os.rename(old, target)
            raise
    finally:
        remove(staging)
    remove(old)
    return target
