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
# every way nbval is told not to compare a cell's output: tags and first-line comments
IGNORE_TAGS = {"nbval-ignore-output", "nbval-skip", "raises-exception"}
IGNORE_COMMENTS = re.compile(r"^\s*#\s*NBVAL_(IGNORE_OUTPUT|SKIP|RAISES_EXCEPTION)\b", re.M)
SANITIZE_CFG = ROOT / "tests" / "nbval_sanitize.cfg"
# Every place a rule of tests/nbval_sanitize.cfg replaces text in the stored outputs: (notebook, cell
# index, what it replaced, with its digits as 9). A new match means a rule hides more than it
# was written for.
SANITIZED = {
    "pytest_duration": [("notebooks/MLE07_Best_Practices_for_Spark_ML.ipynb", 31, "9.99s")],
    "cluster_master": [],  # only the fresh output of a cluster run (tests/course_plugin.py)
}


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


def ignored_by_nbval(cell) -> bool:
    """nbval does not compare this cell's output (a tag, or an NBVAL_ comment in its source)."""
    return bool(IGNORE_TAGS & set(cell.metadata.get("tags", []))) or bool(IGNORE_COMMENTS.search(cell.source))


def test_every_way_to_ignore_a_cell_is_counted():
    new = nbformat.v4.new_code_cell
    ways = [new("x = 1", metadata={"tags": [tag]}) for tag in sorted(IGNORE_TAGS)]
    ways += [new(f"# NBVAL_{kind}\nx = 1") for kind in ("IGNORE_OUTPUT", "SKIP", "RAISES_EXCEPTION")]
    ways.append(new("import os\n  #  NBVAL_SKIP"))
    assert all(ignored_by_nbval(cell) for cell in ways)
    kept = [new("x = 1"), new("# NBVAL_CHECK_OUTPUT\nx = 1"), new("x = 1", metadata={"tags": ["check"]})]
    assert not any(ignored_by_nbval(cell) for cell in kept)


def test_nbval_compares_every_cell():
    """Output is made deterministic (seeds, ordering, rounding; timings come from benchmarks/),
    never exempted from the comparison."""
    cells = [(path.name, index) for path in EXECUTED for index, c in enumerate(code_cells(path))]
    ignored = [(path.name, index) for path in EXECUTED for index, c in enumerate(code_cells(path))
               if ignored_by_nbval(c)]
    assert cells
    assert ignored == [], f"code cells nbval does not compare (notebook, code cell): {ignored}"


def sanitizer_rules() -> dict[str, re.Pattern]:
    import configparser

    config = configparser.ConfigParser()
    config.read(SANITIZE_CFG, encoding="utf-8")
    return {name: re.compile(config[name]["regex"]) for name in config.sections()}


def output_texts(output) -> list[str]:
    texts = [output.get("text", ""), output.get("evalue", ""), "\n".join(output.get("traceback", []))]
    texts += [value for kind, value in output.get("data", {}).items() if kind.startswith("text/")]
    return [text if isinstance(text, str) else "".join(text) for text in texts if text]


def test_each_sanitizer_rule_replaces_only_what_varies():
    found = {name: [] for name in sanitizer_rules()}
    for path in EXECUTED:
        for index, cell in enumerate(nbformat.read(path, as_version=4).cells):
            for output in cell.get("outputs", []):
                for text in output_texts(output):
                    for name, rule in sanitizer_rules().items():
                        found[name] += [(f"{path.parent.name}/{path.name}", index, re.sub(r"\d", "9", m.group(0)))
                                        for m in rule.finditer(text)]
    assert found == SANITIZED, "what tests/nbval_sanitize.cfg replaces in the stored outputs changed"


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


def test_agenda_table_shows_each_notebooks_run_time_from_a_make_course_record(tmp_path):
    """The README's Run column comes from a `make course` record (runner.write_times): minutes per
    notebook, a dash for a notebook the record lacks, and a line saying which run it was."""
    from includes.tools.agenda import readme_table, run_times
    from includes.tools.runner import write_times

    record = write_times({"ML00a_Spark_Review": 90.0, "ML16L_Capstone_Lab_Jester_Jokes": 151.2}, 1234.5, 2,
                         tmp_path / "course-times.json")
    table = readme_table(times_file=record).splitlines()
    assert table[0].endswith("| Run |")
    row = {line.split(" | ")[0].strip("| "): line for line in table if line.startswith("| ML")}
    assert row["ML00a"].endswith("| 1.5 min |") and row["ML16L"].endswith("| 2.5 min |")
    assert row["ML01"].endswith("| – |")
    assert "2 notebooks at a time; the whole course 20.6 min" in table[-1]
    assert "| Run |" not in readme_table(times_file=tmp_path / "absent.json")
    record.write_text(record.read_text().replace("ML00a_Spark_Review", "ML99_Not_A_Lesson"))
    with pytest.raises(ValueError, match="ML99_Not_A_Lesson"):
        run_times(record)
