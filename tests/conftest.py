import os
import sys
from pathlib import Path

import pytest

COURSE_ROOT = Path(__file__).resolve().parent.parent
if str(COURSE_ROOT) not in sys.path:
    sys.path.insert(0, str(COURSE_ROOT))


@pytest.fixture
def fake_java(tmp_path):
    """Make an executable `java` that prints the given `-version` text; returns its JAVA_HOME."""

    def make(version_text: str, exit_code: int = 0) -> Path:
        home = tmp_path / "jdk"
        (home / "bin").mkdir(parents=True)
        java = home / "bin" / "java"
        java.write_text(f"#!/bin/sh\ncat >&2 <<'TXT'\n{version_text}\nTXT\nexit {exit_code}\n")
        java.chmod(0o755)
        return home

    return make


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    """Units of work for `pytest -n 2 --dist loadgroup` (make test).

    The cells of one notebook (nbval) and the tests of one module share a group, so they run in
    order in one worker, but every test that executes whole notebooks (marked slow or cluster)
    is a group of its own: the two workers then share the lab runs instead of one worker
    getting all of tests/test_labs.py. Runs before xdist's own hook, which reads the marks.
    """
    for item in items:
        if item.get_closest_marker("slow") or item.get_closest_marker("cluster"):
            group = item.nodeid
        else:
            group = item.nodeid.split("::", 1)[0]
        item.add_marker(pytest.mark.xdist_group(group))
