"""The same numbers on every x86-64 machine, on the Python side (numpy, scipy, scikit-learn).

The JVM side is pinned by ``REPRODUCIBLE_JAVA_OPTIONS`` (:mod:`includes.runtime.spark`). Python's
numeric libraries choose their code by the CPU and the core count when they load, and each choice
changes the order in which floating-point terms are added, so the last bits of a result, and
sometimes a printed digit, differ from one machine to the next:

- numpy's and scipy's OpenBLAS pick a kernel family at load time: ``Haswell`` (AVX2) on most
  machines, ``SkylakeX`` (AVX-512) on CPUs that have it, ``Sandybridge`` (AVX) on older ones. A
  matrix product or a least-squares solve gives other bits with each. ``OPENBLAS_CORETYPE``
  chooses the family.
- OpenBLAS splits large products over one thread per core, and scikit-learn's OpenMP code
  (k-means, for one) splits its sums over one thread per core: the thread count changes the bits.
  ``OPENBLAS_NUM_THREADS`` and ``OMP_NUM_THREADS`` fix it (OpenBLAS uses no more threads than
  the machine has cores).
- numpy's own vector code (``exp``, ``log``, ...) dispatches to AVX-512 variants where the CPU
  has them. ``NPY_ENABLE_CPU_FEATURES`` limits it to the AVX2 group (``X86_V3``).

The course computes like a 2-core AVX2 machine everywhere it can: every x86-64 CPU made since
about 2015 (Intel Haswell and later, AMD Zen and later) runs the AVX2 code. The variables must be
set before numpy loads, so the launchers (``make lab``, ``make course``/``make outputs``, the test
suite, ``make cluster``) set them for every process they start, and the set-up cell sets them in a
kernel that was started some other way (numpy is not loaded before it runs). Spark's Python
workers inherit them from the driver (local mode) or from the worker (``make cluster``).

Standard library only: ``make setup`` (tools/bootstrap.py) reports the pin before ``.venv`` exists.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import MutableMapping

OPENBLAS_CORETYPE = "Haswell"  # threadpoolctl reports it as the OpenBLAS "architecture"
NUMPY_FEATURES = "X86_V3"  # numpy 2.4's name for the AVX2 + FMA3 + BMI group of dispatched code
THREADS = "2"  # the reference machine's core count: its stored outputs were computed with 2 threads
# What OpenBLAS' Haswell kernels and numpy's X86_V3 code need (the names of /proc/cpuinfo's flags;
# lzcnt is "abm" there).
REQUIRED_FLAGS = frozenset({"avx", "avx2", "fma", "bmi1", "bmi2", "abm", "f16c", "movbe"})
# macOS names the same features in sysctl's machdep.cpu.{features,leaf7_features}
_MACOS_NAMES = {"avx1.0": "avx", "avx2": "avx2", "fma": "fma", "bmi1": "bmi1", "bmi2": "bmi2",
                "lzcnt": "abm", "f16c": "f16c", "movbe": "movbe"}


def cpu_flags() -> frozenset[str] | None:
    """The CPU's feature flags (lower case, /proc/cpuinfo's names), or None when they cannot be read."""
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("flags"):
                return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    if sys.platform == "darwin":
        try:
            text = subprocess.run(["sysctl", "-n", "machdep.cpu.features", "machdep.cpu.leaf7_features"],
                                  capture_output=True, text=True, timeout=10).stdout.lower()
        except (OSError, subprocess.SubprocessError):
            return None
        return frozenset(_MACOS_NAMES.get(word, word) for word in text.split())
    return None


def numeric_environment(machine: str | None = None, flags: frozenset[str] | None = None) -> dict[str, str]:
    """The variables that pin the Python side's numeric code on this machine.

    The thread counts everywhere; the AVX2 kernels where the CPU runs them (x86-64 with AVX2, FMA
    and BMI). Elsewhere (ARM, an x86 CPU older than 2013) the native code is left to choose, and
    the last digits of some results may differ from the stored outputs, as on the JVM side.
    """
    machine = (machine or platform.machine()).lower()
    flags = cpu_flags() if flags is None else flags
    env = {"OPENBLAS_NUM_THREADS": THREADS, "OMP_NUM_THREADS": THREADS}
    if machine in ("x86_64", "amd64") and flags is not None and REQUIRED_FLAGS <= flags:
        env["OPENBLAS_CORETYPE"] = OPENBLAS_CORETYPE
        env["NPY_ENABLE_CPU_FEATURES"] = NUMPY_FEATURES
    return env


def pin(environ: MutableMapping[str, str] | None = None) -> dict[str, str]:
    """Set :func:`numeric_environment` in ``environ`` (default ``os.environ``), overriding values
    set from outside; returns what it set. numpy refuses to load when both
    ``NPY_ENABLE_CPU_FEATURES`` and ``NPY_DISABLE_CPU_FEATURES`` are set, so the latter goes."""
    environ = os.environ if environ is None else environ
    env = numeric_environment()
    environ.update(env)
    if "NPY_ENABLE_CPU_FEATURES" in env:
        environ.pop("NPY_DISABLE_CPU_FEATURES", None)
    return env


def describe(env: dict[str, str] | None = None) -> str:
    """One line for ``make setup``: what the Python side's numbers are pinned to on this machine."""
    env = numeric_environment() if env is None else env
    threads = f"{env['OPENBLAS_NUM_THREADS']} threads"
    if "OPENBLAS_CORETYPE" in env:
        return f"numpy/scipy: OpenBLAS {env['OPENBLAS_CORETYPE']} kernels, numpy's AVX2 code, {threads}: OK"
    return (f"numpy/scipy: {threads}; this CPU ({platform.machine()}) lacks AVX2 kernels, so the last "
            "digits of some results may differ from the stored outputs")


def main(argv: list[str] | None = None) -> int:
    """``python -m includes.runtime.numeric --exports``: shell lines for a cluster worker's
    ``spark-env.sh``, so its executors compute like the course's kernels."""
    argv = sys.argv[1:] if argv is None else argv
    if argv == ["--exports"]:
        for key, value in numeric_environment().items():
            print(f"export {key}={value}")
        return 0
    print(describe())
    return 0


if __name__ == "__main__":
    sys.exit(main())
