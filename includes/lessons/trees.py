"""Reading fitted Spark decision trees: feature names, importances, the tree as a picture.

Databricks notebooks draw a tree with ``display(model)``; plain Jupyter has nothing like it.
This module rebuilds the tree from public API only:

- :func:`parse_debug_string` parses ``model.toDebugString`` (the text every Spark tree model,
  and each member of ``model.trees`` of a forest or boosted ensemble, prints) into
  :class:`TreeNode` objects. The JVM's node objects (``model._java_obj.rootNode()``) hold the
  same facts but are private API, so they are not used.
- :func:`feature_attributes` reads the names and category labels that ``VectorAssembler`` and
  ``StringIndexer`` store in the features column's schema metadata (``ml_attr``).
- :func:`importance_table` lists ``featureImportances`` with those names, sorted and rounded,
  so it prints the same on every run; :func:`named_debug_string` puts the names into the text.
- :func:`draw_tree` draws the top levels of a tree with matplotlib (:func:`layout` computes the
  positions, so they can be checked without drawing).

Used by ML07 (decision trees) and ready for ML08 (random forests).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterator, Mapping, Sequence

_IF = re.compile(r"^If \(feature (\d+) (?:<= (\S+)|in \{([^}]*)\})\)$")
_ELSE = re.compile(r"^Else \(feature (\d+) (?:> (\S+)|not in \{([^}]*)\})\)$")
_PREDICT = re.compile(r"^Predict: (\S+)$")
_FEATURE = re.compile(r"\bfeature (\d+)\b")
_CATEGORY_SET = re.compile(r"\{([^}]*)\}")


@dataclass
class TreeNode:
    """One node of a parsed tree. A leaf has ``prediction``; a split has ``feature`` and either
    ``threshold`` (continuous: rows with ``x <= threshold`` go left) or ``categories``
    (categorical: rows whose category index is in the set go left)."""

    prediction: float | None = None
    feature: int | None = None
    threshold: float | None = None
    categories: tuple[float, ...] | None = None
    left: TreeNode | None = None
    right: TreeNode | None = None

    @property
    def is_leaf(self) -> bool:
        return self.prediction is not None

    def depth(self) -> int:
        """Edges on the longest path from this node down to a leaf (a lone leaf has depth 0)."""
        return 0 if self.is_leaf else 1 + max(self.left.depth(), self.right.depth())

    def nodes(self) -> Iterator[TreeNode]:
        """All nodes, pre-order (a node, then its left subtree, then its right subtree)."""
        yield self
        if not self.is_leaf:
            yield from self.left.nodes()
            yield from self.right.nodes()

    def leaves(self) -> list[TreeNode]:
        return [node for node in self.nodes() if node.is_leaf]


def _categories(text: str) -> tuple[float, ...]:
    return tuple(float(value) for value in text.split(",") if value.strip())


def parse_debug_string(text: str) -> TreeNode:
    """The tree described by a single tree's ``toDebugString``.

    The first line (``DecisionTreeRegressionModel: uid=..., depth=..``) is a header; then every
    split is an ``If`` line, its left subtree, an ``Else`` line and its right subtree, and every
    leaf a ``Predict`` line. A forest's text holds several trees: parse ``model.trees[i]``
    one at a time instead.
    """
    lines = [line.strip() for line in text.strip().splitlines()]
    if lines and not (_IF.match(lines[0]) or _PREDICT.match(lines[0])):
        lines = lines[1:]  # the header
    if any(line.startswith("Tree ") for line in lines):
        raise ValueError("this is an ensemble's text: parse each of model.trees separately")
    if not lines:
        raise ValueError("no tree in the text")

    def parse(pos: int) -> tuple[TreeNode, int]:
        if pos >= len(lines):
            raise ValueError("the text ends inside a split")
        line = lines[pos]
        leaf = _PREDICT.match(line)
        if leaf:
            return TreeNode(prediction=float(leaf.group(1))), pos + 1
        split = _IF.match(line)
        if not split:
            raise ValueError(f"line {pos + 1}: expected 'If' or 'Predict', got {line!r}")
        feature, threshold, categories = split.groups()
        node = TreeNode(feature=int(feature),
                        threshold=None if threshold is None else float(threshold),
                        categories=None if categories is None else _categories(categories))
        node.left, pos = parse(pos + 1)
        other = _ELSE.match(lines[pos]) if pos < len(lines) else None
        if not other or int(other.group(1)) != node.feature:
            raise ValueError(f"line {pos + 1}: expected the 'Else' of feature {node.feature}")
        node.right, pos = parse(pos + 1)
        return node, pos

    root, end = parse(0)
    if end != len(lines):
        raise ValueError(f"line {end + 1}: unexpected text after the tree: {lines[end]!r}")
    return root


def feature_attributes(df, features_col: str = "features") -> tuple[list[str], dict[int, list[str]]]:
    """The names of the vector's elements and, for categorical ones, their category labels
    (``{feature index: labels}``, label ``i`` is category index ``i``), from the column's
    ``ml_attr`` metadata. Elements without a name are called ``f<index>``."""
    attrs = df.schema[features_col].metadata.get("ml_attr", {})
    size = attrs.get("num_attrs", 0)
    names: dict[int, str] = {}
    labels: dict[int, list[str]] = {}
    for kind, group in attrs.get("attrs", {}).items():
        for attr in group:
            index = attr["idx"]
            names[index] = attr.get("name", f"f{index}")
            if kind in ("nominal", "binary") and "vals" in attr:
                labels[index] = list(attr["vals"])
    size = max([size] + [i + 1 for i in names])
    return [names.get(i, f"f{i}") for i in range(size)], labels


def importance_table(model, names: Sequence[str], top: int | None = None, digits: int = 4,
                     keep_zero: bool = False):
    """``model.featureImportances`` as a pandas DataFrame (``feature``, ``importance``), largest
    first, ties by name, rounded to ``digits``; features the tree never splits on are left out
    unless ``keep_zero``."""
    import pandas as pd

    importances = model.featureImportances.toArray()
    if len(importances) != len(names):
        raise ValueError(f"{len(importances)} importances but {len(names)} names")
    rows = [(name, round(float(value), digits)) for name, value in zip(names, importances)
            if keep_zero or value > 0]
    rows.sort(key=lambda row: (-row[1], row[0]))
    table = pd.DataFrame(rows[:top] if top is not None else rows, columns=["feature", "importance"])
    return table


def _label(value: float, labels: Sequence[str] | None) -> str:
    index = int(value)
    if labels is not None and index == value and 0 <= index < len(labels):
        return labels[index]
    return f"{value:g}"


def split_text(node: TreeNode, names: Sequence[str] | None = None,
               categories: Mapping[int, Sequence[str]] | None = None, max_labels: int = 3) -> str:
    """The condition that sends a row to the left ("yes") branch, in words.

    A category set names its labels; when the set is long but its complement (among the known
    labels) is short, the condition is written as ``not in`` the complement; when both are long,
    only the sizes are given.
    """
    if node.is_leaf:
        raise ValueError("a leaf has no split")
    name = names[node.feature] if names is not None else f"feature {node.feature}"
    if node.categories is None:
        return f"{name} <= {node.threshold:g}"
    labels = (categories or {}).get(node.feature)
    chosen = [_label(v, labels) for v in node.categories]
    if len(chosen) <= max_labels:
        return f"{name} in {{{', '.join(chosen)}}}"
    if labels is not None:
        rest = [labels[i] for i in range(len(labels)) if float(i) not in node.categories]
        if len(rest) <= max_labels:
            return f"{name} not in {{{', '.join(rest)}}}"
        return f"{name}: {len(chosen)} of {len(labels)} values"
    return f"{name} in {len(chosen)} values"


def named_debug_string(text: str, names: Sequence[str],
                       categories: Mapping[int, Sequence[str]] | None = None) -> str:
    """``toDebugString`` with ``feature <i>`` replaced by the feature's name and, for categorical
    features with known labels, the category indices in ``{...}`` replaced by their labels."""
    def rename(line: str) -> str:
        found = _FEATURE.search(line)
        if found and categories and int(found.group(1)) in categories:
            labels = categories[int(found.group(1))]
            line = _CATEGORY_SET.sub(
                lambda m: "{" + ",".join(_label(v, labels) for v in _categories(m.group(1))) + "}", line)
        return _FEATURE.sub(lambda m: names[int(m.group(1))], line)

    return "\n".join(rename(line) for line in text.splitlines())


@dataclass
class Placed:
    """A node as drawn by :func:`draw_tree`: position (``x``, ``level``), parent, and whether the
    subtree below it was cut off (``truncated``: drawn as a box with "...")."""

    node: TreeNode
    x: float
    level: int
    parent: Placed | None
    is_left: bool
    truncated: bool


def layout(root: TreeNode, max_depth: int = 3) -> list[Placed]:
    """Positions for the top ``max_depth`` levels: each drawn leaf (or cut-off subtree) gets the
    next x from left to right, each split sits midway over its children. Pre-order."""
    if max_depth < 0:
        raise ValueError(f"max_depth must be >= 0, got {max_depth}")
    placed: list[Placed] = []
    next_x = [0.0]

    def place(node: TreeNode, level: int, parent: Placed | None, is_left: bool) -> Placed:
        truncated = not node.is_leaf and level >= max_depth
        item = Placed(node, 0.0, level, parent, is_left, truncated)
        placed.append(item)
        if node.is_leaf or truncated:
            item.x = next_x[0]
            next_x[0] += 1.0
        else:
            left = place(node.left, level + 1, item, True)
            right = place(node.right, level + 1, item, False)
            item.x = (left.x + right.x) / 2
        return item

    place(root, 0, None, True)
    return placed


def _two_lines(condition: str) -> str:
    """The feature's name on one line, the rest of the condition on the next."""
    for marker in (" not in {", " in {", " <= ", ": "):
        if marker in condition:
            name, rest = condition.split(marker, 1)
            return name + ":\n" + rest if marker == ": " else name + "\n" + marker.lstrip() + rest
    return condition


def draw_tree(model_or_root, names: Sequence[str] | None = None,
              categories: Mapping[int, Sequence[str]] | None = None, max_depth: int = 3,
              ax=None, title: str | None = None, value_format: str = "{:,.0f}"):
    """Draw the top ``max_depth`` levels of a fitted tree (a Spark tree model, or a
    :class:`TreeNode`) and return the matplotlib Axes. Splits show their condition (left branch
    = "yes"), leaves their prediction, cut-off subtrees "..." and their number of leaves."""
    import matplotlib.pyplot as plt

    root = model_or_root if isinstance(model_or_root, TreeNode) else parse_debug_string(model_or_root.toDebugString)
    placed = layout(root, max_depth)
    width = max(p.x for p in placed) + 1
    levels = max(p.level for p in placed) + 1
    if ax is None:
        _, ax = plt.subplots(figsize=(max(6.0, 2.2 * width), 1.4 * levels + 0.6))
    for p in placed:
        if p.parent is not None:
            ax.plot([p.parent.x, p.x], [-p.parent.level, -p.level], color="grey", linewidth=1, zorder=1)
            ax.text((p.parent.x + p.x) / 2, -(p.parent.level + p.level) / 2, "yes" if p.is_left else "no",
                    ha="center", va="center", fontsize=7, color="grey", zorder=2,
                    bbox=dict(boxstyle="round,pad=0.1", facecolor="white", edgecolor="none"))
        if p.node.is_leaf:
            text, color = "predict\n" + value_format.format(p.node.prediction), "#d8ecd3"
        elif p.truncated:
            text, color = f"...\n({len(p.node.leaves())} leaves)", "#eeeeee"
        else:
            text, color = _two_lines(split_text(p.node, names, categories)), "#d6e4f0"
        ax.text(p.x, -p.level, text, ha="center", va="center", fontsize=8, zorder=3,
                bbox=dict(boxstyle="round,pad=0.35", facecolor=color, edgecolor="grey"))
    ax.set_xlim(-0.6, width - 0.4)
    ax.set_ylim(-(levels - 1) - 0.5, 0.5)
    ax.axis("off")
    if title:
        ax.set_title(title)
    return ax
