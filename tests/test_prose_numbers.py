"""Prose says only what the outputs show: every number a markdown cell quotes is printed by the same
notebook (its stored outputs, or set in its code), or is listed in tests/prose_figures.toml with its
source. A changed output then flags the prose that quoted the old number.

Numbers checked: decimals (0.825, $240.71, 1.2 GB) and integers of three or more digits (1,366,
5780); years are dates, not figures. Math ($...$), links and URLs are skipped. Thousands separators
and trailing zeros after the decimal point do not matter ($1,170.00 matches 1170.0), and a decimal
quoted with fewer places matches a printed one that rounds to it (0.94 for 0.9412, 7786 for 7786.3).
"""

import re
import tomllib
from functools import cache
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
EXECUTED = sorted((ROOT / "notebooks").glob("*.ipynb")) + sorted((ROOT / "solutions").glob("*.ipynb"))
FIGURES = ROOT / "tests" / "prose_figures.toml"
NOTEBOOK_ID = re.compile(r"^MLE?\d+[a-z]?L?$")

NUMBER = re.compile(r"(?<![\w.,\-/#@^_\\])(\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+\.\d+|\d{3,})(?![\w\-/]|[.,]\d)")
YEAR = re.compile(r"(19|20)\d\d")


def notebook_id(path: Path) -> str:
    return path.stem.split("_")[0]


def plain(number: str) -> set[str]:
    """The spellings that count as the same figure: without thousands separators, and with the
    trailing zeros of a decimal dropped."""
    n = number.replace(",", "")
    spellings = {n}
    if "." in n:
        spellings.add(n.rstrip("0").rstrip("."))
    return spellings


@cache
def printed(path: Path) -> str:
    """What the notebook shows: its code and its stored outputs, thousands separators removed."""
    parts = []
    for cell in nbformat.read(path, as_version=4).cells:
        if cell.cell_type != "code":
            continue
        parts.append(cell.source)
        for output in cell.get("outputs", []):
            texts = [output.get("text", "")] + [value for kind, value in output.get("data", {}).items()
                                                if kind.startswith("text/")]
            parts += [text if isinstance(text, str) else "".join(text) for text in texts]
    text = re.sub(r"(?<=\d)_(?=\d{3})", "", "\n".join(parts))  # 200_000 in code
    return re.sub(r"(?<=\d),(?=\d{3})", "", text)


@cache
def printed_decimals(path: Path) -> frozenset[str]:
    return frozenset(re.findall(r"(?<![\d.])\d+\.\d+", printed(path)))


def shows(path: Path, number: str) -> bool:
    """The notebook prints ``number``, or a decimal that rounds to it (prose says 0.94 for 0.9412)."""
    text = printed(path)
    if any(re.search(rf"(?<![\d.]){re.escape(s)}(?![\d])", text) for s in plain(number)):
        return True
    quoted = number.replace(",", "")
    places = len(quoted.split(".")[1]) if "." in quoted else 0
    return any(len(p.split(".")[1]) > places and round(float(p), places) == float(quoted)
               for p in printed_decimals(path))


def quoted_numbers(markdown: str) -> list[str]:
    text = re.sub(r"\$\$.*?\$\$", " ", markdown, flags=re.S)
    text = re.sub(r"(?<!\\)\$[^$\n]+?(?<!\\)\$", " ", text)  # inline math
    text = re.sub(r"\]\([^)]*\)", "]", text)  # link targets
    text = re.sub(r"https?://\S+", " ", text).replace("\\$", "$")
    return [m.group(1) for m in NUMBER.finditer(text) if not YEAR.fullmatch(m.group(1))]


def unprinted(path: Path) -> dict[str, list[int]]:
    """{number: [markdown cell indexes]} of the figures the notebook quotes but does not print."""
    found: dict[str, list[int]] = {}
    for index, cell in enumerate(nbformat.read(path, as_version=4).cells):
        if cell.cell_type == "markdown":
            for number in quoted_numbers(cell.source):
                if not shows(path, number):
                    found.setdefault(number, []).append(index)
    return found


def figures() -> dict[str, dict[str, str]]:
    return tomllib.loads(FIGURES.read_text(encoding="utf-8"))


BY_ID = {notebook_id(path): path for path in EXECUTED}


def test_the_rules_find_what_they_should():
    md = ("RMSE \\$240.71 (was \\$1,170.00), 5780 rows, 12 trees, 40% of 7,146 in 2018; "
          "$x^{256}$, [ML-100K](https://x.org/ml-100k/123), v4.2.0, ML16, 0.5772")
    assert quoted_numbers(md) == ["240.71", "1,170.00", "5780", "7,146", "0.5772"]
    assert plain("1,170.00") == {"1170.00", "1170"}


@pytest.mark.parametrize("path", EXECUTED, ids=[p.stem for p in EXECUTED])
def test_every_quoted_number_is_printed_or_sourced(path):
    listed = figures().get(notebook_id(path), {})
    missing = unprinted(path)
    unsourced = {n: cells for n, cells in missing.items() if n not in listed}
    assert not unsourced, (
        f"markdown quotes numbers the notebook does not print (cell indexes): {unsourced}. Print them, "
        f"or list them under [{notebook_id(path)}] in tests/prose_figures.toml with their source")
    stale = sorted(set(listed) - set(missing))
    assert not stale, f"tests/prose_figures.toml lists numbers [{notebook_id(path)}] no longer needs: {stale}"
    for number, source in listed.items():
        assert source.strip() and "TODO" not in source, f"{number}: say where it comes from"
        if NOTEBOOK_ID.match(source):  # printed by another notebook: checked there
            assert source in BY_ID and shows(BY_ID[source], number), f"{number} is not printed by {source}"


def test_every_listed_notebook_exists():
    assert set(figures()) <= set(BY_ID), set(figures()) - set(BY_ID)
