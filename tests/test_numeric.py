"""The Python side computes the same numbers on every x86-64 machine (includes/runtime/numeric.py).

A probe computation whose bits change with OpenBLAS' kernel family, OpenBLAS' thread count, numpy's
AVX-512 code and OpenMP's thread count is run in fresh processes: unpinned, forced from outside to
each family this CPU can run, and pinned. Pinned, every one gives one answer, the one recorded here
from the reference machine; a course kernel and a Spark Python worker report the pinned kernels.
"""

import json
import os
import platform
import subprocess
import sys
import textwrap

import pytest

from includes.paths import COURSE_ROOT
from includes.runtime import numeric
from includes.runtime.numeric import numeric_environment, pin

# Bits of results that move with the CPU: a matrix product, a long dot product and a least-squares
# solve (OpenBLAS' kernels and threads), exp and log (numpy's AVX-512 code), k-means centres
# (scikit-learn's OpenMP threads). Printed as one JSON line with threadpoolctl's view.
PROBE = textwrap.dedent("""
    import hashlib, json, warnings
    import numpy as np
    from sklearn.cluster import KMeans
    from threadpoolctl import threadpool_info

    def probe_digests():
        rng = np.random.default_rng(0)
        a, b = rng.standard_normal((257, 301)), rng.standard_normal((301, 123))
        v = rng.standard_normal(10007)
        points = rng.standard_normal((50000, 10)) + rng.integers(0, 8, 50000)[:, None]
        values = {
            "matmul": a @ b,
            "dot": np.dot(v, v),
            "lstsq": np.linalg.lstsq(a, v[:257], rcond=None)[0],
            "exp_log": np.exp(v) + np.log1p(np.abs(v)),
            "kmeans": KMeans(8, random_state=0, n_init=2).fit(points).cluster_centers_,
        }
        return {name: hashlib.sha256(np.ascontiguousarray(value).tobytes()).hexdigest()[:16]
                for name, value in values.items()}

    def probe_report():
        digests = probe_digests()
        pools = {p["internal_api"]: p for p in threadpool_info()}
        return {"digests": digests, "openblas": pools["openblas"].get("architecture"),
                "openblas_threads": pools["openblas"]["num_threads"],
                "openmp_threads": pools.get("openmp", {}).get("num_threads")}
""")

# probe_digests() pinned (Haswell kernels, numpy's X86_V3 code, 2 threads), computed on the reference
# machine. The claim under test: every x86-64 machine with AVX2 and two or more cores computes these.
REFERENCE = {"matmul": "0467a885fb6f1ede", "dot": "416d942b0aed8a16", "lstsq": "2fb76d83b91b3657",
             "exp_log": "25cee12863e1c527", "kmeans": "45834cd50f17a539"}
# a Spark Python worker runs scikit-learn's OpenMP code on spark.task.cpus threads (1): PySpark sets
# OMP_NUM_THREADS for its workers, and that pin holds on every machine too
WORKER_REFERENCE = dict(REFERENCE, kmeans="450aa7a3cea79586")

FLAGS = numeric.cpu_flags() or frozenset()
AVX2_X86 = platform.machine().lower() in ("x86_64", "amd64") and numeric.REQUIRED_FLAGS <= FLAGS
# the OpenBLAS families this CPU can run (an unsupported forced family makes OpenBLAS fall back)
FAMILIES = ["Haswell", "Sandybridge"] + (["SkylakeX"] if {"avx512f", "avx512vl", "avx512bw"} <= FLAGS else [])
NUMERIC_VARIABLES = ("OPENBLAS_CORETYPE", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS",
                     "NPY_ENABLE_CPU_FEATURES", "NPY_DISABLE_CPU_FEATURES")


def outside_environment(**forced: str) -> dict[str, str]:
    """This process's environment without the pin, plus what is forced "from outside"."""
    env = {k: v for k, v in os.environ.items() if k not in NUMERIC_VARIABLES}
    env.update(forced)
    return env


def run_probe(env: dict[str, str], pinned: bool) -> dict:
    """The probe in a fresh interpreter; ``pinned``: the set-up cell's pin first, as in a notebook."""
    prelude = "from includes.runtime.numeric import pin\npin()\n" if pinned else ""
    code = prelude + PROBE + "\nprint(json.dumps(probe_report()))\n"
    proc = subprocess.run([sys.executable, "-c", code], cwd=COURSE_ROOT, env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_the_pin_on_an_avx2_x86_machine_and_elsewhere():
    avx2 = frozenset({"avx", "avx2", "fma", "bmi1", "bmi2", "abm", "f16c", "movbe", "sse4_2"})
    assert numeric_environment("x86_64", avx2) == {
        "OPENBLAS_CORETYPE": "Haswell", "NPY_ENABLE_CPU_FEATURES": "X86_V3",
        "OPENBLAS_NUM_THREADS": "2", "OMP_NUM_THREADS": "2"}
    # an x86 CPU without AVX2 cannot run those kernels (numpy would refuse to load): threads only
    assert numeric_environment("x86_64", frozenset({"avx", "sse4_2"})) == {
        "OPENBLAS_NUM_THREADS": "2", "OMP_NUM_THREADS": "2"}
    assert numeric_environment("aarch64", avx2) == {"OPENBLAS_NUM_THREADS": "2", "OMP_NUM_THREADS": "2"}
    assert numeric_environment("x86_64", frozenset()) == {  # flags unreadable
        "OPENBLAS_NUM_THREADS": "2", "OMP_NUM_THREADS": "2"}


def test_pin_overrides_what_was_forced_from_outside():
    environ = {"OPENBLAS_CORETYPE": "SkylakeX", "OMP_NUM_THREADS": "16", "NPY_DISABLE_CPU_FEATURES": "X86_V4",
               "PATH": "/bin"}
    pin(environ)
    assert environ["OMP_NUM_THREADS"] == "2" and environ["PATH"] == "/bin"
    if AVX2_X86:
        assert environ["OPENBLAS_CORETYPE"] == "Haswell" and environ["NPY_ENABLE_CPU_FEATURES"] == "X86_V3"
        assert "NPY_DISABLE_CPU_FEATURES" not in environ  # numpy refuses to load with both set


@pytest.mark.skipif(not AVX2_X86, reason="bit-for-bit reproduction is claimed for x86-64 CPUs with AVX2 only")
def test_one_answer_whatever_family_is_forced_from_outside():
    """Unpinned, the probe's bits depend on the family (so the probe can tell); pinned, every forced
    family, thread count and numpy setting gives the reference answer."""
    unpinned = {family: run_probe(outside_environment(OPENBLAS_CORETYPE=family), pinned=False)
                for family in FAMILIES}
    assert unpinned["Haswell"]["openblas"] == "Haswell" and unpinned["Sandybridge"]["openblas"] == "Sandybridge"
    assert unpinned["Sandybridge"]["digests"] != unpinned["Haswell"]["digests"]
    if "SkylakeX" in unpinned:
        assert unpinned["SkylakeX"]["digests"]["matmul"] != unpinned["Haswell"]["digests"]["matmul"]
    # the pinned kernels and vector code with one thread: the BLAS and k-means bits still move
    one_thread = run_probe(outside_environment(OPENBLAS_CORETYPE="Haswell", OPENBLAS_NUM_THREADS="1",
                                               OMP_NUM_THREADS="1", NPY_ENABLE_CPU_FEATURES=numeric.NUMPY_FEATURES),
                           pinned=False)
    assert one_thread["digests"]["matmul"] != REFERENCE["matmul"]
    assert one_thread["digests"]["kmeans"] != REFERENCE["kmeans"]

    for family in FAMILIES:
        forced = outside_environment(OPENBLAS_CORETYPE=family, OMP_NUM_THREADS="7", OPENBLAS_NUM_THREADS="1",
                                     NPY_DISABLE_CPU_FEATURES="AVX512_SPR" if "SkylakeX" in FAMILIES else "")
        report = run_probe(forced, pinned=True)
        assert report["openblas"] == "Haswell", (family, report)
        assert report["openblas_threads"] == min(2, os.cpu_count()) and report["openmp_threads"] == 2
        assert report["digests"] == REFERENCE, (family, report["digests"])


@pytest.mark.skipif(not AVX2_X86, reason="bit-for-bit reproduction is claimed for x86-64 CPUs with AVX2 only")
def test_a_course_kernel_on_a_bigger_machine_computes_like_the_reference_machine(tmp_path):
    """A kernel started with another family forced in its environment (as a learner's own Jupyter
    might) and a local master with 4 cores, then the set-up cell: the kernel and Spark's Python
    workers run Haswell kernels and compute the reference answer, and Spark cuts data into as many
    partitions as on the 2-core reference machine (so randomSplit and sums see the same rows)."""
    from jupyter_client.manager import start_new_kernel

    env = outside_environment(OPENBLAS_CORETYPE=FAMILIES[-1], OMP_NUM_THREADS="5",
                              COURSE_WORK_ROOT=str(tmp_path / "work"),
                              MLFLOW_TRACKING_URI=f"sqlite:///{tmp_path / 'mlflow.db'}")
    env["COURSE_SPARK_MASTER"] = "local[4]"
    km, kc = start_new_kernel(kernel_name="python3", env=env, cwd=str(COURSE_ROOT / "notebooks"))
    try:
        outputs = []

        def run(code):
            reply = kc.execute_interactive(code, timeout=300, output_hook=lambda m: outputs.append(m))
            assert reply["content"]["status"] == "ok", reply["content"]

        run(f"%run {COURSE_ROOT / 'includes' / 'classroom_setup.py'} NUMERIC")
        run(PROBE + textwrap.dedent("""
            import json
            kernel_report = probe_report()
            worker_reports = sc.parallelize([0, 1], 2).map(lambda _: probe_report()).collect()
            print("REPORT" + json.dumps([kernel_report] + worker_reports))
            import pandas as pd
            print("PARTITIONS", sc.defaultParallelism, sc.parallelize(range(100)).getNumPartitions(),
                  spark.createDataFrame(pd.DataFrame({"x": range(100)})).rdd.getNumPartitions(),
                  spark.range(100).rdd.getNumPartitions())
        """))
        text = "".join(m["content"].get("text", "") for m in outputs if m["msg_type"] == "stream")
        assert "may differ from the stored outputs" not in text, text
        assert "master local[4]" in text, text
        assert "PARTITIONS 2 2 2 2" in text, text
        reports = json.loads(text.split("REPORT", 1)[1].splitlines()[0])
        assert len(reports) == 3
        kernel, *workers = reports
        assert kernel["openblas"] == "Haswell" and kernel["openmp_threads"] == 2, kernel
        assert kernel["digests"] == REFERENCE, kernel["digests"]
        for worker in workers:
            # PySpark gives its Python workers OMP_NUM_THREADS = spark.task.cpus (1) itself
            assert worker["openblas"] == "Haswell" and worker["openmp_threads"] == 1, worker
            assert worker["digests"] == WORKER_REFERENCE, worker["digests"]
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def test_the_set_up_cell_warns_when_numpy_was_loaded_unpinned():
    """numpy loaded before the set-up cell cannot be pinned any more: the check says so."""
    code = ("import numpy\nfrom includes.runtime.numeric import pin\npin()\n"
            "from includes.runtime.classroom import numeric_pin_problem\nprint(numeric_pin_problem())")
    env = outside_environment(OPENBLAS_CORETYPE="Sandybridge")
    proc = subprocess.run([sys.executable, "-c", code], cwd=COURSE_ROOT, env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    if AVX2_X86:
        assert "runs its Sandybridge kernels, not Haswell" in proc.stdout
    proc = subprocess.run([sys.executable, "-c", code.replace("import numpy\n", "", 1)], cwd=COURSE_ROOT,
                          env=env, capture_output=True, text=True, timeout=120)
    assert proc.stdout.strip() == "None", proc.stdout + proc.stderr
