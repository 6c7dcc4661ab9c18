"""docs/architecture.md matches the tree, and the packages import each other in one direction only.

    python -m pytest tests/test_architecture.py
"""

from __future__ import annotations

import ast
import os
import re

from tests.conftest import REPO

DOC = os.path.join(REPO, "docs", "architecture.md")
TOP = ("ganscale", "docs", "configs", "benchmarks", "tests", "slurm", "launch")
# a path of the repository written anywhere in the page (prose, backticks, the tree)
PATH = re.compile(r"(?<![\w./-])((?:%s)/[\w./-]*[\w/])" % "|".join(TOP))
# a dotted name of the package in backticks: `ganscale.metrics.evaluation.build_evaluation`
DOTTED = re.compile(r"`(ganscale(?:\.\w+)+)")


def doc() -> str:
    with open(DOC) as f:
        return f.read()


def tree_paths(text: str) -> list[str]:
    """The entries of the first code block (one a line, two spaces per level), as paths from the repo root."""
    block = text.split("```", 2)[1]
    stack: list[tuple[int, str]] = []
    out = []
    for line in block.splitlines()[1:]:
        if not line.strip():
            continue
        indent = len(line) - len(line.lstrip(" "))
        name = line.split()[0]
        while stack and stack[-1][0] >= indent:
            stack.pop()
        path = "".join(n for _, n in stack) + name
        out.append(path)
        if name.endswith("/"):
            stack.append((indent, name))
    return out


def test_every_entry_of_the_tree_exists():
    paths = tree_paths(doc())
    assert len(paths) > 15  # the parser read the tree
    missing = [p for p in paths if not (os.path.isdir if p.endswith("/") else os.path.isfile)(os.path.join(REPO, p))]
    assert not missing, f"docs/architecture.md names paths that do not exist: {missing}"


def test_every_package_and_top_level_folder_is_in_the_tree():
    listed = set(tree_paths(doc()))
    pkg = os.path.join(REPO, "ganscale")
    packages = {f"ganscale/{d}/" for d in os.listdir(pkg)
                if os.path.isfile(os.path.join(pkg, d, "__init__.py"))}
    folders = {f"{d}/" for d in os.listdir(REPO) if d in TOP}
    assert not (packages | folders) - listed, "add them to the tree in docs/architecture.md"


def test_every_path_named_in_the_text_exists():
    names = set(PATH.findall(doc()))
    assert len(names) > 10
    missing = sorted(p for p in names if not os.path.exists(os.path.join(REPO, p)))
    assert not missing, f"docs/architecture.md names paths that do not exist: {missing}"


def _defines(source: str, name: str) -> bool:
    return re.search(rf"^\s*(def|class)\s+{name}\b|^\s*{name}\s*[:=]|^\s*(from|import)\b.*\b{name}\b",
                     source, re.M) is not None


def test_every_dotted_name_in_the_text_is_defined():
    """`ganscale.a.b.name.method`: the longest module prefix is a file that defines the rest."""
    bad = []
    for dotted in sorted(set(DOTTED.findall(doc()))):
        parts = dotted.split(".")
        for k in range(len(parts), 0, -1):
            base = os.path.join(REPO, *parts[:k])
            file = base + ".py" if os.path.isfile(base + ".py") else os.path.join(base, "__init__.py")
            if os.path.isfile(file):
                break
        else:
            bad.append(dotted)
            continue
        with open(file) as f:
            source = f.read()
        if not all(_defines(source, name) for name in parts[k:]):
            bad.append(dotted)
    assert not bad, f"docs/architecture.md names what the code does not define: {bad}"


# ----------------------------------------------------------------------------- layering
# package -> the packages it must not import (also lazily, inside functions). config/ is the
# composition root (it gathers every component's config dataclass) and cli/ the entry points.
FORBIDDEN = {
    "utils": {"cli", "config", "conditions", "data", "distributed", "losses", "metrics", "nets", "ops",
              "regularizers", "text", "train"},
    "conditions": {"cli", "data", "distributed", "metrics", "nets", "ops", "train"},
    "data": {"cli", "distributed", "metrics", "nets", "ops", "train"},
    "nets": {"cli", "data", "distributed", "metrics", "ops", "train"},
    "metrics": {"cli", "nets", "ops", "train"},
    "distributed": {"cli", "data", "metrics", "ops", "train"},
    "ops": {"train"},
}


def imports_of(path: str) -> set[str]:
    with open(path) as f:
        tree = ast.parse(f.read())
    out = set()
    for node in ast.walk(tree):
        names = [node.module] if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module else \
            [a.name for a in node.names] if isinstance(node, ast.Import) else []
        out |= {n.split(".")[1] for n in names if n.startswith("ganscale.")}
    return out


def test_layers_import_one_way():
    bad = []
    for package, forbidden in FORBIDDEN.items():
        for root, _, files in os.walk(os.path.join(REPO, "ganscale", package)):
            for name in files:
                if name.endswith(".py"):
                    path = os.path.join(root, name)
                    for dst in imports_of(path) & forbidden:
                        bad.append(f"{os.path.relpath(path, REPO)} imports ganscale.{dst}")
    assert not bad, "lower layers import higher ones:\n" + "\n".join(bad)
