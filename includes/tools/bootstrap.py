"""Set up the course on this machine: ``make setup`` runs ``python3 -m includes.tools.bootstrap``.

Standard library only (it runs before the virtual environment exists). Steps, each skipped
when already done:

1. check Python (3.11+) and Java (17 or 21), with a message that says what to install;
2. create ``.venv`` and install requirements.txt under constraints.txt;
3. resolve Delta Lake's jars from Maven Central, prove Spark + Delta work (a tiny Delta write
   and read in a temporary folder) and record the jar files for later sessions
   (``python -m includes.runtime.spark check``);
4. write the Spark driver's class archive (``python -m includes.runtime.spark archive``: one
   representative session whose JVM dumps the classes it loaded, so later drivers start faster;
   redone with the environment, or when the file is missing; a failure only costs that time);
5. install the datasets (``COURSE_DATASETS_MIRROR`` names a local mirror or base URL).

The environment is marked ready (``.venv/.course-ready``) only after every step succeeded,
so an interrupted setup is simply redone by the next ``make`` command.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv

from includes.paths import COURSE_ROOT, CourseSetupError
from includes.runtime.numeric import describe as describe_numerics
from includes.runtime.preflight import check_java

VENV = COURSE_ROOT / ".venv"
VENV_PYTHON = VENV / "bin" / "python"
READY = VENV / ".course-ready"
CLASS_ARCHIVE = VENV / "course-spark-classes.jsa"  # includes.runtime.spark.CLASS_ARCHIVE
MIN_PYTHON = (3, 11)

def say(message: str) -> None:
    print(f"[setup] {message}", flush=True)


def fingerprint() -> str:
    digest = hashlib.sha256()
    for name in ("requirements.txt", "constraints.txt"):
        digest.update((COURSE_ROOT / name).read_bytes())
    return digest.hexdigest()


def check_python() -> None:
    if sys.version_info < MIN_PYTHON:
        raise CourseSetupError(
            f"Python {sys.version.split()[0]} is too old: the course needs Python 3.11 or newer. "
            "Install it (e.g. `sudo apt-get install python3.11 python3.11-venv`, "
            "`brew install python@3.11`) and run `make PYTHON=python3.11 setup`."
        )


def run(args: list[str], what: str) -> None:
    result = subprocess.run(args, cwd=COURSE_ROOT)
    if result.returncode != 0:
        raise CourseSetupError(f"{what} failed (exit code {result.returncode}); see the output above.")


def create_venv() -> None:
    if not VENV_PYTHON.exists():
        say(f"creating the virtual environment in {VENV.name}/")
        venv.EnvBuilder(with_pip=True, clear=True).create(VENV)
    say("installing the pinned requirements (first time: a few minutes)")
    run([str(VENV_PYTHON), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
         "-r", "requirements.txt", "-c", "constraints.txt"], "pip install")


def check_spark_and_delta() -> None:
    say("resolving Delta Lake's jars from Maven Central and checking Spark + Delta")
    result = subprocess.run([str(VENV_PYTHON), "-m", "includes.runtime.spark", "check"],
                            cwd=COURSE_ROOT, capture_output=True, text=True)
    if result.returncode != 0:
        raise CourseSetupError(
            "Spark could not start with Delta Lake. The most common cause is that Delta's jars "
            "could not be downloaded from Maven Central (repo1.maven.org): check the network or "
            "proxy, or fetch them once with `mvn dependency:get -Dartifact=io.delta:delta-spark_4.2_2.13:4.4.0` (Spark's resolver also looks in ~/.m2).\n"
            + result.stderr[-3000:]
        )
    say(result.stdout.strip())


def write_class_archive() -> None:
    say("writing the Spark driver's class archive (one representative session)")
    result = subprocess.run([str(VENV_PYTHON), "-m", "includes.runtime.spark", "archive"],
                            cwd=COURSE_ROOT, capture_output=True, text=True)
    if result.returncode != 0:  # not fatal: every session still starts, only slower
        say("the class archive could not be written, so every Spark session loads its classes itself "
            "(a few seconds more per start): " + (result.stderr.strip().splitlines() or ["no error output"])[-1])
    else:
        say(result.stdout.strip())


def install_datasets() -> None:
    mirror = os.environ.get("COURSE_DATASETS_MIRROR")
    say("installing the datasets" + (f" from the mirror {mirror}" if mirror else " (downloading)"))
    run([str(VENV_PYTHON), "-m", "includes.data.datasets", "install"], "dataset install")


def main() -> int:
    try:
        check_python()
        java = check_java()
        ready = READY.exists() and READY.read_text() == fingerprint()
        if not ready:
            say(f"Python {sys.version.split()[0]}, Java {java}")
            create_venv()
            CLASS_ARCHIVE.unlink(missing_ok=True)  # a new environment: its classes may differ
            check_spark_and_delta()
            READY.write_text(fingerprint())
        if not CLASS_ARCHIVE.exists():
            write_class_archive()
        install_datasets()
        say(describe_numerics())
    except CourseSetupError as exc:
        print(f"\nSetup failed: {exc}", file=sys.stderr)
        return 1
    say("ready")
    return 0


if __name__ == "__main__":
    sys.exit(main())
