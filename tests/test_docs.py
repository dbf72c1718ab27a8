"""README and the docs pages: every link leads to a file, and every command they show names what exists: a make
target of the Makefile, a `python -m modernize.<module>`, and `python run.py` overrides Hydra composes."""

import re
import shlex
from pathlib import Path

import pytest

from modernize.design.config import compose

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")
CODE = re.compile(r"```[a-z]*\n(.*?)```|`([^`\n]+)`", re.S)


def code_of(page: Path) -> list[str]:
    """The page's commands: each line of its code blocks (continuation lines joined) and each inline code span."""
    commands = []
    for block, inline in CODE.findall(page.read_text()):
        if inline:
            commands.append(inline)
        else:
            commands += [line.split(" #")[0].strip() for line in block.replace("\\\n", " ").splitlines()]
    return [c for c in commands if c]


def page_ids(pages):
    return [str(p.relative_to(ROOT)) for p in pages]


@pytest.mark.parametrize("page", PAGES, ids=page_ids(PAGES))
def test_every_link_leads_to_a_file(page):
    missing = [target for target in LINK.findall(page.read_text())
               if not target.startswith(("http://", "https://", "#", "data:"))
               and not (page.parent / target.split("#")[0]).exists()]
    assert not missing, missing


def make_targets() -> set[str]:
    phony = re.search(r"^\.PHONY:(.*)$", (ROOT / "Makefile").read_text(), re.M)[1]
    return set(phony.split())


@pytest.mark.parametrize("page", PAGES, ids=page_ids(PAGES))
def test_every_command_names_what_exists(page):
    targets, wrong = make_targets(), []
    for command in code_of(page):
        for target in re.findall(r"\bmake (?:-s )?([a-z][a-z-]*)", command):
            if target not in targets:
                wrong.append(f"make {target}")
        for module in re.findall(r"python -m modernize\.([a-z_]+)", command):
            if not (ROOT / "modernize" / f"{module}.py").exists():
                wrong.append(f"python -m modernize.{module}")
    assert not wrong, wrong


def run_py_overrides(page: Path) -> list[list[str]]:
    """The overrides of every complete `python run.py ...` / `torchrun ... run.py ...` command on the page (those with
    a placeholder <...> or =X, a shell variable or an elision are examples of a form, not commands)."""
    found = []
    for command in code_of(page):
        if "run.py" not in command or re.search(r"<|\$|\.\.\.|=[A-Z]\b", command):
            continue
        words = shlex.split(command.split("run.py", 1)[1].split(";")[0].split("&&")[0])
        found.append([w for w in words if w != "-m" and "=" in w])
    return found


@pytest.mark.slow  # composes every command of every page
@pytest.mark.parametrize("page", [p for p in PAGES if run_py_overrides(p)],
                         ids=page_ids([p for p in PAGES if run_py_overrides(p)]))
def test_every_run_py_command_composes(page):
    for overrides in run_py_overrides(page):
        sweep = [o for o in overrides if "," in o.split("=", 1)[1] and not o.split("=", 1)[1].startswith("[")]
        # a multirun's value list: compose its first value (Hydra sweeps over them one by one)
        single = [o if o not in sweep else o.split(",")[0] for o in overrides]
        single = [o for o in single if not o.startswith(("hydra/", "hydra."))]
        compose(single)


SOURCE_PATH = re.compile(r"^(?:modernize|conf|docs|tests|hydra_plugins)/[\w./-]+$")


@pytest.mark.parametrize("page", PAGES, ids=page_ids(PAGES))
def test_docs_name_only_files_the_repository_holds(page):
    """A source path a page names in code (`conf/delta/gelu.yaml`, `modernize/results/stats.py: paired_p_value`) is a
    file or folder of this repository, and no page cites the project lead's folder beside it: a reader has nothing
    else (docs/recipe.md once cited shared/reference/convnext_paper.yaml). Paths under experiments/ may be what a
    command on the page writes, so they are not checked here."""
    cited = {command.split(":")[0].split(" ")[0] for command in code_of(page)}
    missing = sorted(path for path in cited if SOURCE_PATH.match(path) and not (ROOT / path).exists())
    assert not missing, missing
    assert "shared/" not in page.read_text()
