"""Fail-fast checks that run before a SparkSession is created.

Every check raises :class:`CourseSetupError` whose message says what is wrong and what to do,
so a learner never has to decode a Py4J stack trace to find out that Java is missing.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
from pathlib import Path
from urllib.parse import urlparse

# Spark 4.0 runs on Java 17 and 21 (Java 8 and 11 support ended with Spark 4.0).
SUPPORTED_JAVA = (17, 21)


from includes.paths import CourseSetupError  # noqa: F401  (raised by every check here)


def find_java() -> str | None:
    """Return the java executable Spark will use: $JAVA_HOME/bin/java first, then PATH."""
    java_home = os.environ.get("JAVA_HOME")
    if java_home:
        candidate = Path(java_home) / "bin" / "java"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return shutil.which("java")


def parse_java_major(version_output: str) -> int | None:
    """Extract the major version from `java -version` output.

    Handles both the modern scheme (`openjdk version "17.0.15"`) and the legacy one
    (`java version "1.8.0_392"` -> 8).
    """
    match = re.search(r'version "(\d+)(?:\.(\d+))?', version_output)
    if not match:
        return None
    major = int(match.group(1))
    if major == 1 and match.group(2):
        major = int(match.group(2))
    return major


INSTALL_JAVA_HINT = (
    "Install a JDK 17 or 21 and point JAVA_HOME at it, for example:\n"
    "  Debian/Ubuntu: sudo apt-get install openjdk-17-jdk-headless\n"
    "  macOS:         brew install openjdk@17\n"
    "  Windows:       install Eclipse Temurin 17 from adoptium.net\n"
    "then open a new terminal (or restart the Jupyter kernel) and run the cell again."
)


def check_java() -> int:
    """Check that a supported Java is installed; return its major version."""
    java = find_java()
    if java is None:
        raise CourseSetupError(
            "Java was not found: Spark runs on the JVM and needs Java 17 or 21.\n" + INSTALL_JAVA_HINT
        )
    try:
        proc = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise CourseSetupError(f"Could not run {java} -version ({exc}).\n" + INSTALL_JAVA_HINT) from exc
    output = proc.stderr + proc.stdout
    major = parse_java_major(output)
    if major is None:
        raise CourseSetupError(
            f"Could not read the Java version from `{java} -version`:\n{output.strip()}\n" + INSTALL_JAVA_HINT
        )
    if major not in SUPPORTED_JAVA:
        raise CourseSetupError(
            f"Java {major} found at {java}, but Spark 4 needs Java 17 or 21.\n" + INSTALL_JAVA_HINT
        )
    return major


def check_master_reachable(master: str, timeout: float = 5.0) -> None:
    """For spark:// URLs, check that something answers on the host and port (sc:// is refused).

    local[...] masters need no network and pass. A standalone master URL may list several
    masters (spark://h1:7077,h2:7077); the check passes if any answers.
    """
    if master.startswith("local"):
        return
    parsed = urlparse(master)
    if parsed.scheme == "sc":
        raise CourseSetupError(
            f"COURSE_SPARK_MASTER={master!r} is a Spark Connect endpoint. The course runs on classic "
            "Spark only: its lessons use SparkContext, the RDD API and hyperopt's SparkTrials, which "
            "Spark Connect does not offer, and Delta Lake on Connect needs Delta's server plugin. "
            "Point COURSE_SPARK_MASTER at the cluster's standalone master (spark://HOST:7077) instead, "
            "or unset it to run on this machine."
        )
    if parsed.scheme != "spark":
        raise CourseSetupError(
            f"COURSE_SPARK_MASTER={master!r} is not a Spark URL. Use local[*] or "
            "spark://HOST:7077 (a standalone cluster)."
        )
    default_port = 7077
    hosts = parsed.netloc.split(",")
    errors = []
    for hostport in hosts:
        host, _, port = hostport.partition(":")
        port_number = int(port.split("/")[0]) if port else default_port
        try:
            with socket.create_connection((host, port_number), timeout=timeout):
                return
        except OSError as exc:
            errors.append(f"{host}:{port_number}: {exc}")
    raise CourseSetupError(
        f"The Spark cluster at {master} does not answer ({'; '.join(errors)}).\n"
        "Check that the master is running and the URL is right (the master's web UI shows it, "
        "usually on port 8080), or unset COURSE_SPARK_MASTER to run on this machine."
    )
