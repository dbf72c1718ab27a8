"""Every dotted name `modernize.x.y` the project writes resolves: in the package's docstrings and messages, conf/, the
docs, the README, the example scripts and the committed tables. A reader who types one (`from modernize.weights
import ...` in a usage example once raised ImportError) gets what it names."""

import importlib
import re
from pathlib import Path

import pytest

from modernize.design.config import RUN_LABEL_RESOLVER

ROOT = Path(__file__).resolve().parents[1]
NAME = re.compile(r"(?<![\w/.-])modernize(?:\.[A-Za-z_]\w*)+")
FILES = sorted({*ROOT.glob("modernize/**/*.py"), *ROOT.glob("conf/**/*.yaml"), *ROOT.glob("docs/*.md"),
                ROOT / "README.md", ROOT / "Makefile", ROOT / "run.py", ROOT / "hubconf.py",
                *ROOT.glob("benchmarks/*.py"), *ROOT.glob("experiments/*/*/*.md"), *ROOT.glob("experiments/*/*/*.csv")})


def resolves(name: str) -> bool:
    """The longest importable module prefix of `name`, then attributes for the rest."""
    parts = name.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            found = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        try:
            for attribute in parts[cut:]:
                found = getattr(found, attribute)
        except AttributeError:
            return False
        return True
    return False


def names_in(path: Path) -> set[str]:
    return {match.group(0) for match in NAME.finditer(path.read_text(errors="replace"))
            if not match.group(0).endswith((".py", ".yaml", ".md", ".csv")) and match.group(0) != RUN_LABEL_RESOLVER}


@pytest.mark.parametrize("path", FILES, ids=[str(p.relative_to(ROOT)) for p in FILES])
def test_every_dotted_name_the_project_writes_resolves(path):
    assert not sorted(name for name in names_in(path) if not resolves(name))


def test_the_check_finds_a_name_that_moved():
    assert resolves("modernize.design.weights.load_pretrained") and resolves("modernize.results.stats")
    assert not resolves("modernize.weights") and not resolves("modernize.design.weights.no_such_thing")
