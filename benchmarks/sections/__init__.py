"""The benchmark sections, one module each (``benchmarks/course.py`` runs them).

A module registers its section with :func:`benchmarks.common.section`; :func:`load` imports them in
the order of ``--list`` and of a full run. A new section: a module here, and its name in MODULES.
"""

from __future__ import annotations

from importlib import import_module

from benchmarks.common import SECTIONS, Section

MODULES = ("als", "jester", "streaming", "serving", "tuning", "deployment", "realtime", "forecasting", "neighbours",
           "joblib_backends")


def load() -> dict[str, Section]:
    """Every section, by name, in the order of MODULES."""
    for name in MODULES:
        import_module(f"{__name__}.{name}")
    return SECTIONS
