"""One description of the machine, for every record of timings the course writes.

``describe()`` is what ``benchmarks/course.py`` (``benchmarks/results/<section>.json``),
``benchmarks/scaling.py`` (``benchmarks/results/scaling.json``) and ``make course``
(``course-times.json``, through :func:`includes.tools.runner.write_times`) store as ``machine``:

- ``cpu``: the CPU model (``model name`` of ``/proc/cpuinfo``, else ``platform.processor()``);
- ``logical_cores``, ``physical_cores`` (None where psutil cannot tell), ``ram_bytes``;
- ``os`` (``platform.platform()``), ``python``, ``java`` (the first line of ``java -version`` of the
  Java Spark uses, None without one);
- the versions of ``spark`` (the pyspark package), ``pandas``, ``scikit-learn``, ``numpy`` and
  ``pyarrow`` (None when not installed);
- ``numeric_pin``: what the Python side's numbers are pinned to (``includes.runtime.numeric``);
- ``load_average``: the 1, 5 and 15 minute load averages when described (a caller that records
  the load at the start and at the end renames it).

Run ``python -m includes.tools.machine`` to print it.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
from pathlib import Path

CPUINFO = Path("/proc/cpuinfo")
PACKAGES = {"spark": "pyspark", "pandas": "pandas", "scikit-learn": "scikit-learn", "numpy": "numpy",
            "pyarrow": "pyarrow"}


def cpu_model(cpuinfo: Path = CPUINFO) -> str:
    """The ``model name`` line of ``cpuinfo``; ``platform.processor()`` when the file is missing or has none."""
    try:
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def java_version() -> str | None:
    """The first line of ``java -version`` for the Java Spark uses ($JAVA_HOME, then PATH), or None."""
    from includes.runtime.preflight import find_java

    java = find_java()
    if java is None:
        return None
    try:
        return subprocess.run([java, "-version"], capture_output=True, text=True, timeout=60).stderr.splitlines()[0]
    except (OSError, IndexError, subprocess.SubprocessError):
        return None


def package_version(distribution: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(distribution)
    except PackageNotFoundError:
        return None


def ram_and_physical_cores() -> tuple[int | None, int | None]:
    """(total RAM in bytes, physical cores): psutil's, else RAM from sysconf and no core count."""
    try:
        import psutil
    except ImportError:
        try:
            return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"), None
        except (OSError, ValueError, AttributeError):
            return None, None
    return psutil.virtual_memory().total, psutil.cpu_count(logical=False)


def describe(cpuinfo: Path = CPUINFO) -> dict:
    """The machine as the course's records store it (the keys are in the module's docstring)."""
    from includes.runtime.numeric import describe as describe_numerics

    ram, physical = ram_and_physical_cores()
    return {
        "cpu": cpu_model(cpuinfo), "logical_cores": os.cpu_count(), "physical_cores": physical, "ram_bytes": ram,
        "os": platform.platform(), "python": platform.python_version(), "java": java_version(),
        **{key: package_version(distribution) for key, distribution in PACKAGES.items()},
        "numeric_pin": describe_numerics(),
        "load_average": list(os.getloadavg()),
    }


if __name__ == "__main__":
    print(json.dumps(describe(), indent=1))
