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

