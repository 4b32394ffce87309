"""``make lab``: JupyterLab at the course folder, set up for a class.

- As root (usual in containers) Jupyter refuses to start without ``--allow-root``; the course
  passes it then, and says so.
- No "Would you like to receive official Jupyter news?" prompt and no update check: a class
  sees the course, not JupyterLab's announcements (``LabApp.news_url=None``,
  ``NeverCheckForUpdate``).

Extra arguments go to ``jupyter lab`` (e.g. ``--port=8899 --no-browser``).
"""

from __future__ import annotations

import os
import sys

from includes.paths import COURSE_ROOT

NO_NEWS = ("--LabApp.news_url=None",
           "--LabApp.check_for_updates_class=jupyterlab.handlers.announcements.NeverCheckForUpdate")


def lab_arguments(euid: int, extra: list[str] | tuple[str, ...] = ()) -> list[str]:
    """The arguments of ``jupyter lab`` for user id ``euid``."""
    args = [f"--notebook-dir={COURSE_ROOT}", *NO_NEWS]
    if euid == 0:
        args.append("--allow-root")
    return args + list(extra)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    euid = os.geteuid()
    if euid == 0:
        print("[lab] running as root (common in containers): starting Jupyter with --allow-root", flush=True)
    os.execv(sys.executable, [sys.executable, "-m", "jupyter", "lab", *lab_arguments(euid, argv)])
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main())
