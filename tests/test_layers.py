"""The package's three layers: the design space, training, results. Imports go down, never up: the design space
(what a model is) imports nothing from training (how a run trains it) or results (what the runs' records become)."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "modernize"

LAYERS = {
    "design": {"spec", "model", "roadmap", "config", "flops", "weights"},
    "training": {"train", "engine", "batches", "state", "recipe", "datasets", "augment", "randaugment", "proxy",
                 "runtime", "lock", "interrupt", "validation", "tracking", "wandb_names", "evaluation", "cli"},
    "results": {"tabulate", "fidelity", "columns", "ablate", "report", "dashboard", "bench", "sweep", "flops_table"},
}
SHARED = {"io", "__init__"}  # atomic writes, used by every layer; the package's public names
MAY_IMPORT = {"design": {"design"}, "training": {"design", "training"}, "results": {"design", "training", "results"}}


def package_imports(path: Path) -> set[str]:
    """The modernize modules a module imports (relative imports, at any depth in the file)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            found.update([node.module.split(".")[0]] if node.module else [a.name for a in node.names])
    return found


def test_every_module_belongs_to_one_layer():
    modules = {p.stem for p in PACKAGE.glob("*.py")}
    placed = set().union(*LAYERS.values())
    assert modules - SHARED == placed, "place a new module in LAYERS (and README's layout)"
    assert sum(map(len, LAYERS.values())) == len(placed)


def test_imports_never_go_up_a_layer():
    layer_of = {module: layer for layer, modules in LAYERS.items() for module in modules}
    wrong = [f"{module} ({layer}) imports {dep} ({layer_of[dep]})"
             for layer, modules in LAYERS.items() for module in sorted(modules)
             for dep in sorted(package_imports(PACKAGE / f"{module}.py") - SHARED)
             if layer_of[dep] not in MAY_IMPORT[layer]]
    assert not wrong, wrong
