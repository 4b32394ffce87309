"""Labs from one source: generate ``labs/`` from ``solutions/``.

A solution notebook is the complete lab. In its code cells, the answer sits between markers::

    # TODO: read the listings into a DataFrame called airbnb_df
    # BEGIN SOLUTION
    airbnb_df = spark.read.format("delta").load(delta_path)
    # END SOLUTION

In the generated lab the region becomes ``<FILL_IN>`` (at the region's indentation), or, when
the region contains lines starting with ``# LAB:``, those lines without the prefix::

    # BEGIN SOLUTION
    # LAB: airbnb_df = spark.read.format(<FILL_IN>).load(<FILL_IN>)
    airbnb_df = spark.read.format("delta").load(delta_path)
    # END SOLUTION

Check cells carry the cell tag ``check`` and are copied unchanged, locked against editing and
deletion (cell metadata ``editable``/``deletable`` false, as nbgrader does). Every TODO cell (a cell
with a solution region) must be followed by a check cell before the next TODO cell.
Generated labs have no outputs. ``<FILL_IN>`` runs as a call that raises ``TodoNotDone``
(installed by the setup cell as an IPython input transformer), so running a lab stops at its
first TODO with a clear message.

CLI: ``python -m includes.tools.labs generate`` rewrites labs/; ``python -m includes.tools.labs check``
exits 1 when labs/ is stale.
"""

from __future__ import annotations

import argparse
import copy
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import nbformat

from includes.paths import COURSE_ROOT
from includes.runtime.checks import PLACEHOLDER

SOLUTIONS_DIR = COURSE_ROOT / "solutions"
LABS_DIR = COURSE_ROOT / "labs"

# The first line of a cell whose code includes/tools/export.py exports (as d2l's #@save): a lab
# solution may export its answer; its lab shows the stub without this line.
SAVE_MARKER = re.compile(r"^#\s*@save\s+(?P<module>[a-z_][a-z0-9_]*)\s*$")
BEGIN = re.compile(r"^(?P<indent>\s*)# BEGIN SOLUTION\s*$")
END = re.compile(r"^\s*# END SOLUTION\s*$")
LAB_LINE = re.compile(r"^(?P<indent>\s*)# LAB: ?(?P<code>.*)$")
CHECK_TAG = "check"


class LabFormatError(ValueError):
    """A solution notebook does not follow the lab conventions."""


def without_marker(source: str) -> str:
    """``source`` without its first line when that is a ``#@save <module>`` marker."""
    head, _, rest = source.lstrip("\n").partition("\n")
    return rest if SAVE_MARKER.match(head.strip()) else source


def strip_solution(source: str, where: str = "cell") -> str:
    """Replace every BEGIN/END SOLUTION region of ``source`` with its lab stub."""
    out: list[str] = []
    region: list[str] | None = None
    indent = ""
    for number, line in enumerate(source.split("\n"), start=1):
        if region is None:
            match = BEGIN.match(line)
            if match:
                region, indent = [], match.group("indent")
            elif END.match(line):
                raise LabFormatError(f"{where}, line {number}: END SOLUTION without BEGIN SOLUTION")
            else:
                out.append(line)
            continue
        if BEGIN.match(line):
            raise LabFormatError(f"{where}, line {number}: nested BEGIN SOLUTION")
        if END.match(line):
            stubs = [m.group("indent") + m.group("code") for m in map(LAB_LINE.match, region) if m]
            out.extend(stubs or [indent + PLACEHOLDER])
            region = None
        else:
            region.append(line)
    if region is not None:
        raise LabFormatError(f"{where}: BEGIN SOLUTION without END SOLUTION")
    return "\n".join(out)


@dataclass
class Region:
    """One ``# BEGIN SOLUTION`` ... ``# END SOLUTION`` region of a cell: lines ``first``..``last``
    (the two markers included), its answer lines and the lab's stub that replaces them."""

    first: int
    last: int
    answer: list[str]
    stub: list[str]


def solution_regions(source: str, where: str = "cell") -> list[Region]:
    """The solution regions of a cell's source, in order (malformed markers raise LabFormatError)."""
    strip_solution(source, where)  # validates the markers
    found, lines = [], source.split("\n")
    first, indent = None, ""
    for number, line in enumerate(lines):
        match = BEGIN.match(line)
        if match:
            first, indent = number, match.group("indent")
        elif first is not None and END.match(line):
            region = lines[first + 1:number]
            stubs = [m.group("indent") + m.group("code") for m in map(LAB_LINE.match, region) if m]
            answer = [line for line in region if not LAB_LINE.match(line)]
            found.append(Region(first, number, answer, stubs or [indent + PLACEHOLDER]))
            first = None
    return found


def stub_region(source: str, index: int) -> str:
    """``source`` with only its region ``index`` replaced by the lab's stub (the other answers stay)."""
    region = solution_regions(source)[index]
    lines = source.split("\n")
    return "\n".join(lines[:region.first] + region.stub + lines[region.last + 1:])


def has_solution(cell) -> bool:
    return cell.cell_type == "code" and any(BEGIN.match(line) for line in cell.source.split("\n"))


def is_check(cell) -> bool:
    return cell.cell_type == "code" and CHECK_TAG in cell.metadata.get("tags", [])


@dataclass
class LabStructure:
    todo_cells: list[int]
    check_cells: list[int]


def analyse(nb, name: str = "notebook") -> LabStructure:
    """Validate the lab conventions and return the indices of TODO and check cells."""
    todos, checks = [], []
    pending_todo: int | None = None
    for index, cell in enumerate(nb.cells):
        if has_solution(cell):
            if is_check(cell):
                raise LabFormatError(f"{name}: cell {index} is a check cell with a solution region")
            if pending_todo is not None:
                raise LabFormatError(
                    f"{name}: TODO cell {pending_todo} has no check cell before the next TODO (cell {index})"
                )
            todos.append(index)
            pending_todo = index
        elif is_check(cell):
            checks.append(index)
            pending_todo = None
    if pending_todo is not None:
        raise LabFormatError(f"{name}: TODO cell {pending_todo} is not followed by a check cell")
    if not todos:
        raise LabFormatError(f"{name}: no TODO cell (no '# BEGIN SOLUTION' region)")
    return LabStructure(todos, checks)


def make_lab(solution) -> nbformat.NotebookNode:
    """Return the learner's version of a solution notebook (no outputs, answers stubbed)."""
    lab = copy.deepcopy(solution)
    for index, cell in enumerate(lab.cells):
        if cell.cell_type != "code":
            continue
        # a solution cell exporting its code (#@save, includes/tools/export.py) shows the learner only the stub
        cell.source = strip_solution(without_marker(cell.source), where=f"cell {index}")
        cell.outputs = []
        cell.execution_count = None
        cell.metadata.pop("execution", None)
        if is_check(cell):  # locked, as nbgrader does, so a learner cannot delete a check by accident
            cell.metadata["editable"] = False
            cell.metadata["deletable"] = False
    return lab


def lab_text(solution_path: Path) -> str:
    solution = nbformat.read(solution_path, as_version=4)
    analyse(solution, solution_path.name)
    return nbformat.writes(make_lab(solution)) + "\n"


def solution_paths(solutions_dir: Path = SOLUTIONS_DIR) -> list[Path]:
    return sorted(solutions_dir.glob("*.ipynb"))


def generate(solutions_dir: Path = SOLUTIONS_DIR, labs_dir: Path = LABS_DIR) -> list[Path]:
    """Write every lab; remove labs whose solution no longer exists. Returns written paths."""
    labs_dir.mkdir(parents=True, exist_ok=True)
    written = []
    expected = set()
    for solution in solution_paths(solutions_dir):
        target = labs_dir / solution.name
        expected.add(target.name)
        target.write_text(lab_text(solution), encoding="utf-8")
        written.append(target)
    for orphan in labs_dir.glob("*.ipynb"):
        if orphan.name not in expected:
            orphan.unlink()
    return written


def generate_one(solution: Path, labs_dir: Path = LABS_DIR) -> Path:
    """Write the lab of one solution notebook. Returns the lab's path."""
    labs_dir.mkdir(parents=True, exist_ok=True)
    target = labs_dir / Path(solution).name
    target.write_text(lab_text(Path(solution)), encoding="utf-8")
    return target


def stale_labs(solutions_dir: Path = SOLUTIONS_DIR, labs_dir: Path = LABS_DIR) -> list[str]:
    """Names of labs that differ from what ``generate`` would write (or are missing/orphaned)."""
    problems = []
    names = set()
    for solution in solution_paths(solutions_dir):
        names.add(solution.name)
        target = labs_dir / solution.name
        if not target.exists():
            problems.append(f"{solution.name}: missing in labs/")
        elif target.read_text(encoding="utf-8") != lab_text(solution):
            problems.append(f"{solution.name}: differs from its solution")
    for lab in labs_dir.glob("*.ipynb"):
        if lab.name not in names:
            problems.append(f"{lab.name}: has no solution in solutions/")
    return sorted(problems)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m includes.tools.labs", description=__doc__.split("\n")[0])
    parser.add_argument("command", choices=["generate", "check"])
    args = parser.parse_args(argv)
    try:
        if args.command == "generate":
            for path in generate():
                print(f"wrote {path.relative_to(COURSE_ROOT)}")
            return 0
        problems = stale_labs()
    except LabFormatError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if problems:
        print("labs/ is stale; run `make labs` (python -m includes.tools.labs generate):", file=sys.stderr)
        for problem in problems:
            print(f"  {problem}", file=sys.stderr)
        return 1
    print(f"labs/ is up to date ({len(solution_paths())} labs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
