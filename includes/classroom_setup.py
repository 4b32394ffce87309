# The one setup cell of every notebook:   %run ../includes/classroom_setup.py <LESSON-ID> [DATASET ...]
# It defines: spark, sc, classroom, working_dir, datasets_dir, display_path, error_condition, and (for labs) the <FILL_IN>
# placeholder plus the check functions.
import sys as _sys
from pathlib import Path as _Path

_course_root = str(_Path(__file__).resolve().parent.parent)
if _course_root not in _sys.path:
    _sys.path.insert(0, _course_root)

from includes.runtime.numeric import pin as _pin_numerics  # noqa: E402

_pin_numerics()  # before numpy loads: a kernel started outside `make lab` computes like the stored outputs
from includes.paths import display_path  # noqa: E402,F401
from includes.runtime.checks import LabCheckError, check, check_equal  # noqa: E402,F401
from includes.runtime.checks import enable_fill_in as _enable_fill_in  # noqa: E402
from includes.runtime.classroom import error_condition, setup as _setup  # noqa: E402,F401

# what the notebook gets (also tells linters that the imports above are for the notebook)
__all__ = ["spark", "sc", "classroom", "working_dir", "datasets_dir", "display_path", "error_condition",
           "LabCheckError", "check", "check_equal"]

if len(_sys.argv) < 2:
    raise SystemExit("usage: %run ../includes/classroom_setup.py <LESSON-ID> [DATASET ...]")

_enable_fill_in()
classroom = _setup(_sys.argv[1], datasets=_sys.argv[2:])
spark = classroom.spark
sc = spark.sparkContext
working_dir = str(classroom.working_dir)
datasets_dir = str(classroom.datasets_dir)
print(classroom.summary())
