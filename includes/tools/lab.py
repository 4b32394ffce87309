"""``make lab``: JupyterLab at the course folder, set up for a class.

- As root (usual in containers) Jupyter refuses to start without ``--allow-root``; the course
  passes it then, and says so.
- No "Would you like to get notified about official Jupyter news?" prompt and no update check:
  a class sees the course, not JupyterLab's announcements. JupyterLab 4.6 asks whenever its
  notification settings leave ``fetchNews`` at "Ask", whatever the server's options
  (``LabApp.news_url=None`` and ``NeverCheckForUpdate`` only stop the requests), so before Jupyter
  starts, ``{sys.prefix}/share/jupyter/lab/settings/overrides.json`` gets
  ``fetchNews: "false"`` and ``checkForUpdates: false`` (merged into what the file already holds).
  A learner's own setting (Settings > Notifications) still wins: overrides change the defaults.

Extra arguments go to ``jupyter lab`` (e.g. ``--port=8899 --no-browser``).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import json5

from includes.paths import COURSE_ROOT
from includes.runtime.numeric import pin as pin_numerics

NO_NEWS = ("--LabApp.news_url=None",
           "--LabApp.check_for_updates_class=jupyterlab.handlers.announcements.NeverCheckForUpdate")
NOTIFICATION_PLUGIN = "@jupyterlab/apputils-extension:notification"
# the values' types follow the plugin's schema: fetchNews is the string "true"/"false"/"none"
NO_NEWS_SETTINGS = {"fetchNews": "false", "checkForUpdates": False}


def overrides_path(prefix: str | os.PathLike = sys.prefix) -> Path:
    """JupyterLab's settings overrides of the environment at ``prefix``."""
    return Path(prefix) / "share" / "jupyter" / "lab" / "settings" / "overrides.json"


def write_no_news_overrides(prefix: str | os.PathLike = sys.prefix) -> Path:
    """Merge :data:`NO_NEWS_SETTINGS` into the overrides file (other settings kept); return its path."""
    path = overrides_path(prefix)
    overrides = json5.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    if not isinstance(overrides, dict):
        raise ValueError(f"{path} does not hold a JSON object")
    plugin = overrides.setdefault(NOTIFICATION_PLUGIN, {})
    if {key: plugin.get(key) for key in NO_NEWS_SETTINGS} == NO_NEWS_SETTINGS:
        return path
    plugin.update(NO_NEWS_SETTINGS)
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.with_name(f".{path.name}.{os.getpid()}")
    staging.write_text(json.dumps(overrides, indent=2) + "\n", encoding="utf-8")
    os.replace(staging, path)  # another `make lab` starting at the same time reads a whole file
    return path


def lab_arguments(euid: int, extra: list[str] | tuple[str, ...] = ()) -> list[str]:
    """The arguments of ``jupyter lab`` for user id ``euid``."""
    args = [f"--notebook-dir={COURSE_ROOT}", *NO_NEWS]
    if euid == 0:
        args.append("--allow-root")
    return args + list(extra)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    euid = os.geteuid()
    pin_numerics()  # every kernel the server starts computes like the stored outputs
    write_no_news_overrides()
    if euid == 0:
        print("[lab] running as root (common in containers): starting Jupyter with --allow-root", flush=True)
    os.execv(sys.executable, [sys.executable, "-m", "jupyter", "lab", *lab_arguments(euid, argv)])
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main())
