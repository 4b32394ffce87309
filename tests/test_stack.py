"""The pinned set works together: what days 3-4 build on runs on this Spark (one subprocess, ~30 s).

pyspark.pandas with type-hinted functions under numpy >= 2.4 (which raised ValueError before
SPARK-54820), hyperopt's SparkTrials on a local session, xgboost.spark's SparkXGBRegressor, and
a pandas UDF on the course session, whose Python workers must import pandas.
"""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # also run as a script: python tests/test_stack.py WORK
    sys.path.insert(0, str(ROOT))


def probe(work: Path) -> dict:  # pragma: no cover - runs in the subprocess
    import warnings

    import numpy as np
    import pandas as pd

    from includes.runtime.spark import start_session

    spark = start_session("test-stack", "local[2]", work, work / "spark.log")
    spark.sparkContext.setLogLevel("ERROR")
    out = {"numpy": np.__version__, "pandas": pd.__version__}

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pyspark.pandas as ps

        psdf = ps.DataFrame({"x": [1, 2, 3, 4], "y": [0.5, 1.5, 2.5, 3.5]})

        Scaled = ps.DataFrame["x": int, "z": float]  # a typed frame: pandas-on-Spark reads the hint

        def scaled(pdf) -> Scaled:
            return pd.DataFrame({"x": pdf.x, "z": pdf.y * 2})

        def doubled(s) -> ps.Series[np.float64]:
            return s * 2

        out["ps_sum"] = float(psdf.y.sum())
        out["apply_batch"] = sorted(psdf.pandas_on_spark.apply_batch(scaled).to_pandas()["z"].tolist())
        out["transform_batch"] = sorted(psdf.y.pandas_on_spark.transform_batch(doubled).to_pandas().tolist())

    from pyspark.sql.functions import pandas_udf

    @pandas_udf("double")
    def plus_one(v: pd.Series) -> pd.Series:
        return v + 1

    out["pandas_udf"] = sorted(r[0] for r in spark.range(3).select(plus_one("id")).collect())

    from hyperopt import SparkTrials, fmin, hp, tpe

    trials = SparkTrials(parallelism=2)
    best = fmin(lambda x: (x - 3) ** 2, hp.uniform("x", -10, 10), algo=tpe.suggest, max_evals=6,
                trials=trials, rstate=np.random.default_rng(42), show_progressbar=False)
    out["hyperopt"] = {"best_x": best["x"], "statuses": [t["result"]["status"] for t in trials.trials],
                       "losses": [t["result"]["loss"] for t in trials.trials]}

    from pyspark.ml.linalg import Vectors
    from xgboost.spark import SparkXGBRegressor

    train = spark.createDataFrame([(Vectors.dense([float(i)]), 2.0 * i) for i in range(40)], ["features", "label"])
    model = SparkXGBRegressor(num_workers=1, n_estimators=20, max_depth=2).fit(train)
    out["xgb_rows"] = model.transform(train).count()
    spark.stop()
    return out


def test_days_3_and_4_run_on_the_pinned_stack(tmp_path):
    proc = subprocess.run([sys.executable, __file__, str(tmp_path)], cwd=ROOT, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert tuple(int(p) for p in out["numpy"].split(".")[:2]) >= (2, 4)
    assert out["ps_sum"] == 8.0
    assert out["apply_batch"] == [1.0, 3.0, 5.0, 7.0]
    assert out["transform_batch"] == [1.0, 3.0, 5.0, 7.0]
    assert out["pandas_udf"] == [1.0, 2.0, 3.0]
    # six trials evaluated by Spark tasks, and fmin returns the point of the lowest loss they reported
    search = out["hyperopt"]
    assert search["statuses"] == ["ok"] * 6, search
    assert abs((search["best_x"] - 3) ** 2 - min(search["losses"])) < 1e-12, search
    assert out["xgb_rows"] == 40


if __name__ == "__main__":
    print(json.dumps(probe(Path(sys.argv[1]))))
