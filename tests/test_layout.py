"""The shape of includes/ (see includes/README.md) and of the test suite, read from the source.

No import cycle, no reach into another module's private names, the kernel side never loads the
maintainer tools, the leaf modules stay leaves, set-up runs on the standard library, and every
test that executes a whole notebook says why nbval's run of it is not enough.
"""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "includes"


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py")) if "__pycache__" not in p.parts}


def imports(path: Path) -> list[tuple[str, list[str]]]:
    """(module, names) for every import in the file, top level or inside functions."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(alias.name, []) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = module_name(path).split(".")
                package = package[: len(package) - node.level + (1 if path.name == "__init__.py" else 0)]
                base = ".".join(package + ([base] if base else []))
            found.append((base, [alias.name for alias in node.names]))
    return found


def package_imports(path: Path) -> set[str]:
    """The modules of the package that ``path`` imports (``from includes.x import y`` may name a module y)."""
    result = set()
    for module, names in imports(path):
        if module.startswith("includes"):
            for name in names:
                if f"{module}.{name}" in MODULES:
                    result.add(f"{module}.{name}")
            if module in MODULES and module != "includes":
                result.add(module)
    return result


GRAPH = {name: package_imports(path) - {name} for name, path in MODULES.items()}


def test_no_import_cycle():
    state: dict[str, str] = {}

    def visit(node, trail):
        state[node] = "open"
        for nxt in sorted(GRAPH.get(node, ())):
            if state.get(nxt) == "open":
                pytest.fail("import cycle: " + " -> ".join(trail + [node, nxt]))
            if nxt not in state:
                visit(nxt, trail + [node])
        state[node] = "done"

    for name in sorted(GRAPH):
        if name not in state:
            visit(name, [])


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")) + sorted((ROOT / "tests").glob("*.py"))
                         + sorted((ROOT / "benchmarks").rglob("*.py")), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_private_name_from_another_module(path):
    private = [f"{module}.{name}" for module, names in imports(path) if module.startswith("includes")
               for name in names if name.startswith("_")]
    assert not private, f"imports private names of another module: {private}"


def test_the_kernel_side_never_loads_the_tools():
    for name, deps in GRAPH.items():
        if name.startswith(("includes.runtime", "includes.data", "includes.lessons", "includes.paths",
                            "includes.fsutil", "includes.classroom_setup")):
            tools = sorted(d for d in deps if d.startswith("includes.tools"))
            assert not tools, f"{name} imports {tools}"


@pytest.mark.parametrize("leaf", ["includes.paths", "includes.fsutil"])
def test_leaf_modules_import_nothing_from_the_package(leaf):
    assert leaf in MODULES, f"{leaf} is gone: update includes/README.md's rooms and this rule"
    assert GRAPH[leaf] == set(), f"{leaf} imports {GRAPH[leaf]}"


def test_set_up_runs_on_the_standard_library():
    """tools/bootstrap.py runs before .venv exists: it and what it imports use the stdlib only."""
    todo, seen = ["includes.tools.bootstrap"], set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        for module, _ in imports(MODULES[name]):
            top = module.split(".")[0]
            assert top == "includes" or top in sys.stdlib_module_names or top == "__future__", \
                f"{name} imports {module}, which is not in the standard library"
        todo += sorted(GRAPH[name])


def test_whole_notebook_runs_say_why_nbval_is_not_enough():
    for path in sorted((ROOT / "tests").glob("test_*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef) and node.name.startswith("test_"):
                uses_runs = any(isinstance(a, ast.arg) and a.arg == "notebook_runs" for a in node.args.args)
                if uses_runs:
                    doc = ast.get_docstring(node) or ""
                    assert "nbval" in doc, f"{path.name}::{node.name} executes notebooks: its docstring must say why nbval's run is not enough"


def test_pyflakes_finds_no_undefined_or_unused_name():
    """A name used but never defined (a benchmark once lost an import this way) fails here, not
    in a user's run; unused imports go too."""
    proc = subprocess.run([sys.executable, "-m", "pyflakes", "includes", "tests", "benchmarks"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and not proc.stdout.strip(), proc.stdout + proc.stderr


def test_the_lessons_row_of_the_room_table_says_which_modules_are_generated():
    """includes/README.md names every module of lessons/: the ones generated from lesson cells
    (``#@save``, ``make export``) in the row's *generated* part, the hand-written ones after
    *written by hand*; a module moving from one kind to the other must move in the table too."""
    from includes.tools.export import is_generated

    row = next(line for line in (PACKAGE / "README.md").read_text(encoding="utf-8").splitlines()
               if line.startswith("| `lessons/` |"))
    generated_part, marker, hand_part = row.partition("*written by hand*")
    assert marker, "the lessons/ row has lost its '*written by hand*' part"
    for path in sorted((PACKAGE / "lessons").glob("*.py")):
        if path.name == "__init__.py":
            continue
        kind, part = ("generated", generated_part) if is_generated(path) else ("written by hand", hand_part)
        assert f"`{path.stem}`" in part, f"includes/README.md: lessons/{path.name} is {kind} but not listed so"
