"""Conventions every notebook follows (fast: reads the files, runs nothing)."""

import json
import re
from pathlib import Path

import nbformat
import pytest

from includes.tools.agenda import BY_STEM
from includes.data.datasets import load_manifest

ROOT = Path(__file__).resolve().parent.parent
EXECUTED = sorted((ROOT / "notebooks").glob("*.ipynb")) + sorted((ROOT / "solutions").glob("*.ipynb"))
ALL = EXECUTED + sorted((ROOT / "labs").glob("*.ipynb"))
SETUP = re.compile(r"^%run \.\./includes/classroom_setup\.py (?P<id>\S+)(?P<datasets>( \S+)*)$")
IGNORE_TAGS = {"nbval-ignore-output", "nbval-skip"}
MAX_IGNORED_SHARE = 0.15


def code_cells(path):
    return [c for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]


def ids(paths):
    return [f"{p.parent.name}/{p.stem}" for p in paths]


@pytest.mark.parametrize("path", ALL, ids=ids(ALL))
def test_name_and_folder_follow_the_agenda(path):
    entry = BY_STEM.get(path.stem)
    assert entry is not None, f"{path.name} is not a file stem of the agenda (includes/tools/agenda.py)"
    allowed = {"lesson": {"notebooks"}, "lab": {"solutions", "labs"}}[entry.kind]
    assert path.parent.name in allowed, f"a {entry.kind} belongs in {sorted(allowed)}"


@pytest.mark.parametrize("path", ALL, ids=ids(ALL))
def test_first_code_cell_is_the_setup_idiom(path):
    first = code_cells(path)[0].source.strip()
    match = SETUP.match(first)
    assert match, f"first code cell must be `%run ../includes/classroom_setup.py <ID> [DATASET ...]`, got {first!r}"
    assert match.group("id") == BY_STEM[path.stem].id
    known = set(load_manifest())
    assert set(match.group("datasets").split()) <= known


@pytest.mark.parametrize("path", EXECUTED, ids=ids(EXECUTED))
def test_stored_outputs_come_from_one_top_to_bottom_run(path):
    counts = [c.execution_count for c in code_cells(path)]
    assert counts == list(range(1, len(counts) + 1)), (
        "cells were not executed once, in order, in a fresh kernel: refresh with `make outputs`"
    )


@pytest.mark.parametrize("path", EXECUTED, ids=ids(EXECUTED))
def test_outputs_hold_no_machine_paths_or_errors(path):
    for index, cell in enumerate(code_cells(path)):
        for output in cell.outputs:
            assert output.output_type != "error", f"code cell {index} stored an error"
            text = json.dumps(output)
            for marker in (str(ROOT), "/tmp/", "/root/", "/home/"):
                assert marker not in text, f"code cell {index} output shows a machine path ({marker})"


def test_ignored_cells_stay_rare():
    cells = [c for path in EXECUTED for c in code_cells(path)]
    ignored = [c for c in cells if IGNORE_TAGS & set(c.metadata.get("tags", []))]
    assert cells
    share = len(ignored) / len(cells)
    assert share <= MAX_IGNORED_SHARE, f"{len(ignored)}/{len(cells)} code cells ignored by nbval ({share:.0%})"


@pytest.mark.parametrize("path", EXECUTED, ids=ids(EXECUTED))
def test_reads_like_a_lesson(path):
    cells = nbformat.read(path, as_version=4).cells
    lesson_id = Path(path).stem.split("_")[0]
    assert cells[0].cell_type == "markdown" and cells[0].source.startswith(f"# {lesson_id} "), \
        f"starts with the title '# {lesson_id} <Title>'"
    markdown = "\n".join(c.source for c in cells if c.cell_type == "markdown")
    assert re.search(r"In this (lesson|lab) you will", markdown), "lists its objectives"
    assert re.search(r"^#+ .*Summary", markdown, re.M), "ends with a summary section"


def test_readme_agenda_table_is_current():
    from includes.tools.agenda import README, readme_section, readme_table

    assert readme_section(README.read_text(encoding="utf-8")) == readme_table(), (
        "README's agenda table is stale: run `.venv/bin/python -m includes.tools.agenda --write`"
    )
