"""The package's layers are its sub-packages, in this order: design (what a model is), data (images and their
transforms), training (how a run trains a model), results (what the runs' records become). Imports go down, never
up, and the rule is read from the folders: a new module is placed by the folder it is put in. The top-level modules
are the commands users type (`python -m modernize.tabulate`, ...): thin, they may import any layer; modernize.io
(atomic writes) is shared by every layer."""

import ast
import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "modernize"
LAYERS = ("design", "data", "training", "results")  # bottom to top
SHARED = {"io"}
COMMANDS_MAX_LINES = 15  # a command module only hands its arguments to the library


def sub_packages() -> list[str]:
    return sorted(p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file())


def package_imports(path: Path) -> set[str]:
    """The modernize sub-packages and top-level modules a module imports (relative imports at any depth)."""
    folder = path.parent.relative_to(PACKAGE).parts
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level >= 1:
            base = list(folder[: len(folder) - (node.level - 1)])
            names = (node.module.split(".") if node.module else []) or [a.name for a in node.names]
            found.add((base + names)[0])
    return found


def test_the_sub_packages_are_the_layers():
    assert sub_packages() == sorted(LAYERS), "a new sub-package is a layer: place it in LAYERS (and docs/layout.md)"


def test_imports_never_go_up_a_layer():
    wrong = []
    for rank, layer in enumerate(LAYERS):
        for path in sorted((PACKAGE / layer).glob("*.py")):
            for dep in sorted(package_imports(path) - SHARED):
                if dep not in LAYERS[: rank + 1]:
                    wrong.append(f"{layer}/{path.name} imports {dep}")
    assert not wrong, wrong


def test_top_level_modules_are_thin_commands():
    for path in PACKAGE.glob("*.py"):
        if path.stem in SHARED or path.stem == "__init__":
            continue
        tree = ast.parse(path.read_text())
        defined = [n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))]
        assert not defined, f"{path.name} defines {defined}: library code belongs in a layer's folder"
        assert len(path.read_text().splitlines()) <= COMMANDS_MAX_LINES, path.name


LAYOUT = PACKAGE.parent / "docs" / "layout.md"


def test_the_layout_page_names_every_module_in_its_folder():
    """docs/layout.md says which folder holds what: every module of every layer, and of benchmarks/, is named in its
    folder's block, so a module moved or added without a line there (or a line left for a module gone) fails."""
    text = LAYOUT.read_text()
    blocks = {layer: text.split(f"\n  {layer}/ ", 1)[1].split("\n\n", 1)[0] for layer in LAYERS}
    for layer in LAYERS:
        modules = {p.name for p in (PACKAGE / layer).glob("*.py") if p.name != "__init__.py"}
        named = {name for line in blocks[layer].splitlines() if (first := re.match(r" {4}((?:\w+\.py )+)", line))
                 for name in first.group(1).split()}  # the first column: the modules a line is about
        assert modules == named, (layer, sorted(modules - named), sorted(named - modules))
    benchmarks = {p.name for p in (PACKAGE.parent / "benchmarks").glob("*.py")}
    assert benchmarks and all(name in text.split("benchmarks/ ", 1)[1].split("docs/ ", 1)[0] for name in benchmarks)


def test_the_library_holds_no_benchmark():
    """What measures the code lives in benchmarks/, outside the package (python -m modernize.bench runs it)."""
    assert not [p.name for p in PACKAGE.rglob("*bench*.py") if p.parent != PACKAGE]
