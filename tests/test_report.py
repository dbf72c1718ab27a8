"""The HTML report (modernize.report, make report): one self-contained page whose numbers are the CSVs', checked as
text and in a real headless browser."""

import base64
import csv
import json
import os
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest
from helpers import ROOT, SMOKE, env, run_cli
from omegaconf import OmegaConf

from modernize.design import ablation_plan
from modernize.results import ablation as ablate
from modernize.results import report, tabulate
from modernize.design.roadmap import STEPS

SEEDS = (0, 1)


# The shared fixture composes and tabulates ~45 run configs (about 40 s): the whole file is in the slow tier.
pytestmark = pytest.mark.slow


# ------------------------------------------------------------------------------------------------ fixture
def _write_run(sweep: Path, folder: str, cfg, seed: int, top1: float) -> None:
    """A finished run as train.py leaves it: config.yaml, metrics.jsonl (2 epochs), summary.json."""
    run = sweep / folder
    run.mkdir(parents=True)
    cfg = OmegaConf.merge(cfg, {"seed": seed, "out_root": str(sweep.parent), "sweep_name": sweep.name})
    (run / "config.yaml").write_text(OmegaConf.to_yaml(cfg))
    history = [{"epoch": 1, "train_loss": 2.0 + seed / 10, "val_top1": top1 - 5.0},
               {"epoch": 2, "train_loss": 1.5 - seed / 10, "val_top1": top1}]
    (run / "metrics.jsonl").write_text("".join(json.dumps(h) + "\n" for h in history))
    (run / "summary.json").write_text(json.dumps({
        "step": cfg.label, "seed": seed, "kernel_size": cfg.model.block.kernel_size, "final_top1": top1,
        "params": 1000 + len(cfg.label), "gflops_224": 4.0 + len(cfg.label) / 100, "recipe": cfg.recipe.name}))


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """Result folders of all three kinds and their sweep folders, laid out as the Makefile does, from run folders
    written directly (configs composed as the CLI does, accuracies made up): no training."""
    from modernize.design.config import compose

    root = tmp_path_factory.mktemp("experiments")
    smoke = ["profile=smoke", "data=synthetic", "profile.epochs=3"]
    for i, step in enumerate(STEPS):
        cfg = compose([f"+step={step}", *smoke])
        for seed in SEEDS:
            _write_run(root / "runs" / "roadmap-smoke-synthetic", f"{step}-seed{seed}", cfg, seed,
                       60.0 + i + 0.37 * seed + (0.11 * i * seed) % 1)
    for kernel in (3, 7):
        cfg = compose(["+step=kernel_size", f"model.block.kernel_size={kernel}", *smoke])
        for seed in SEEDS:
            _write_run(root / "runs" / "kernels-smoke-synthetic", f"k{kernel}-seed{seed}", cfg, seed,
                       70.0 + kernel / 10 + seed * 0.3)
    for i, deltas in enumerate(ablation_plan.runs()):
        cfg = compose([f"+delta=[{','.join(deltas)}]", *smoke])
        for seed in SEEDS:
            _write_run(root / "runs" / "ablate-smoke-synthetic", f"{cfg.label}-seed{seed}", cfg, seed,
                       50.0 + (i * 7 % 11) + 0.23 * seed * (i % 3))
    assert tabulate.main([str(root / "runs" / "roadmap-smoke-synthetic"), "--out",
                          str(root / "roadmap" / "smoke-synthetic")]) == 0
    assert tabulate.main([str(root / "runs" / "kernels-smoke-synthetic"), "--by-kernel", "--out",
                          str(root / "kernels" / "smoke-synthetic")]) == 0
    assert ablate.main([str(root / "runs" / "ablate-smoke-synthetic"), "--out",
                        str(root / "ablate" / "smoke-synthetic")]) == 0
    page = root / "report" / "smoke-synthetic.html"
    assert report.main([str(root / kind / "smoke-synthetic") for kind in ("roadmap", "kernels", "ablate")]
                       + ["--out", str(page)]) == 0
    return root, page


class Page(HTMLParser):
    """Every element with a data-col (its text), by table id and row data-key; images; links; scripts."""

    def __init__(self):
        super().__init__()
        self.cells, self.images, self.urls, self.stack, self.table, self.key = [], [], [], [], None, None
        self.capture = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "table":
            self.table = a.get("id")
        if tag == "tr":
            self.key = a.get("data-key")
        if tag == "p" and a.get("class") == "fidelity":
            self.table, self.key = a.get("id"), "fidelity"
        if tag == "img":
            self.images.append(a)
        for name in ("src", "href"):
            if name in a and tag != "img":
                self.urls.append(a[name])
        if "data-col" in a:
            self.capture = [self.table, self.key, a["data-col"], ""]

    def handle_data(self, data):
        if self.capture is not None:
            self.capture[3] += data

    def handle_endtag(self, tag):
        if tag == "span" and self.capture is not None:
            self.cells.append(tuple(self.capture))
            self.capture = None


def parse(page: Path) -> Page:
    parser = Page()
    parser.feed(page.read_text())
    return parser


def csv_rows(path: Path, key: str) -> dict[str, dict[str, str]]:
    with open(path, newline="") as f:
        return {row[key]: row for row in csv.DictReader(f)}


def assert_shown_equals_csv(shown: str, value: str, where: str) -> None:
    """A number as shown equals the CSV's at the digits shown; text and booleans are the same words."""
    if value in ("True", "False"):
        assert shown == {"True": "yes", "False": "no"}[value], where
        return
    try:
        number = float(value)
    except ValueError:
        assert shown == value, where
        return
    decimals = len(shown.split(".")[1]) if "." in shown else 0
    assert float(shown.replace(",", "")) == pytest.approx(number, abs=0.5 * 10 ** -decimals + 1e-9), where


def tables_of(root: Path) -> dict[str, tuple[Path, str]]:
    """The report's table ids (sections in the order roadmap, kernels, ablate) -> (CSV, key column)."""
    return {"roadmap-0-table": (root / "roadmap/smoke-synthetic/roadmap.csv", "step"),
            "kernels-1-table": (root / "kernels/smoke-synthetic/roadmap.csv", "step"),
            "ablate-2-table": (root / "ablate/smoke-synthetic/ablation.csv", "delta"),
            "ablate-2-runs": (root / "ablate/smoke-synthetic/ablation_runs.csv", "run")}


def check_numbers(root: Path, cells) -> int:
    """Assert every table cell equals its CSV field; return how many numbers were compared."""
    compared = 0
    for table_id, (path, key) in tables_of(root).items():
        rows = csv_rows(path, key)
        mine = [c for c in cells if c[0] == table_id]
        assert {c[1] for c in mine} == set(rows), table_id  # every CSV row is shown, and no other
        for _, row_key, column, shown in mine:
            assert_shown_equals_csv(shown.strip(), rows[row_key][column], f"{table_id} {row_key} {column}")
            compared += 1
    return compared


# ------------------------------------------------------------------------------------------------ the page
def test_the_page_shows_every_csv_number_as_it_is_in_the_csv(results):
    root, page = results
    parsed = parse(page)
    assert check_numbers(root, parsed.cells) > 300
    fidelity = next(row for row in csv.DictReader(open(root / "roadmap/smoke-synthetic/fidelity.csv")))
    assert [c[3] for c in parsed.cells if c[0] == "roadmap-0-fidelity"] == [fidelity["line"]]
    trend = next(row for row in csv.DictReader(open(root / "kernels/smoke-synthetic/trend.csv")))
    assert [c[3] for c in parsed.cells if c[0] == "kernels-1-fidelity"] == [trend["line"]]
    assert trend["line"].startswith("Kernel trend (2 seeds): 7x7 − 3x3 +0.40")  # 70 + k/10 on every seed
    # the learning curves' table: the last epoch, mean over seeds, of the runs' metrics.jsonl
    curves = {c[1]: c for c in parsed.cells if c[0] == "roadmap-0-curves-table" and c[2] == "val_top1_mean"}
    finals = [json.loads((root / f"runs/roadmap-smoke-synthetic/gelu-seed{s}/metrics.jsonl").read_text()
                         .splitlines()[-1])["val_top1"] for s in SEEDS]
    assert float(curves["gelu"][3]) == pytest.approx(sum(finals) / len(finals), abs=0.005)


def test_the_page_is_self_contained(results):
    _, page = results
    parsed = parse(page)
    text = page.read_text()
    ids = [img["id"] for img in parsed.images]
    assert ids == ["roadmap-0-figure", "roadmap-0-curves", "kernels-1-figure", "ablate-2-figure", "ablate-2-curves"]
    for img in parsed.images:
        assert img["src"].startswith("data:image/png;base64,")
        assert base64.b64decode(img["src"].split(",", 1)[1]).startswith(b"\x89PNG")
    assert not re.search(r"(src|href)=\"(https?:)?//", text) and "<script" not in text
    assert all(u.startswith(("#", "data:")) for u in parsed.urls)


def test_each_section_says_the_command_that_reproduces_it(results):
    root, page = results
    text = page.read_text()
    runs = root / "runs"
    settings = "profile.epochs=3"
    assert f"python run.py -m seed=0,1 +step={','.join(STEPS)} profile=smoke data=synthetic out_root={runs} " \
           f"sweep_name=roadmap-smoke-synthetic {settings}" in text
    assert f"python -m modernize.tabulate {runs}/roadmap-smoke-synthetic --out {root}/roadmap/smoke-synthetic" in text
    assert "python run.py -m +step=kernel_size model.block.kernel_size=3,7 seed=0,1" in text
    assert f"make ablate PROFILE=smoke DATA=synthetic SEEDS=0,1 ARGS={settings} RUNS={runs} RESULTS={root}" in text
    assert "python -m modernize.ablate --delta-lists)&quot; profile=smoke" in text
    # the page's own command, under its own title (not "This page:" then a section's "Reproduce:")
    assert "<p>This page was made by:</p><pre><code>python -m modernize.report " in text
    assert "This page: <p>" not in text


def test_missing_folders_are_skipped_and_nothing_to_show_is_an_error(results, tmp_path, capsys):
    root, _ = results
    page = tmp_path / "page.html"
    assert report.main([str(root / "roadmap/smoke-synthetic"), str(tmp_path / "kernels/none"),
                        "--out", str(page)]) == 0
    assert "Not shown (no results yet)" in page.read_text() and "ablate-" not in page.read_text()
    assert report.main([str(tmp_path / "nothing"), "--out", str(tmp_path / "x.html")]) == 2
    assert "nothing to report" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------------ a browser
def _browser():
    """A headless Chromium driven by Selenium, or a skip that says what is missing."""
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        pytest.skip("selenium is not installed (pip install -e '.[test]')")
    binary = next((shutil.which(b) for b in ("chromium", "chromium-browser", "google-chrome") if shutil.which(b)),
                  None)
    driver_path = shutil.which("chromedriver")
    if binary is None or driver_path is None:
        pytest.skip("no headless browser: install Debian's chromium and chromium-driver (make browser)")
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    # --no-sandbox: Chromium refuses to run as root with its sandbox (CI containers)
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1400,1000"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(driver_path), options=options)


@pytest.mark.slow
def test_the_page_renders_in_a_real_browser_with_the_csv_numbers(results):
    from selenium.webdriver.common.by import By

    root, page = results
    driver = _browser()
    try:
        driver.get(page.resolve().as_uri())
        assert driver.title == "modernize: results"
        errors = [e for e in driver.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]
        assert errors == []
        images = driver.find_elements(By.TAG_NAME, "img")
        assert len(images) == 5
        for img in images:
            driver.execute_script("arguments[0].scrollIntoView();", img)
            natural = driver.execute_script("return [arguments[0].complete, arguments[0].naturalWidth, "
                                            "arguments[0].naturalHeight];", img)
            assert natural[0] and natural[1] > 0 and natural[2] > 0, img.get_attribute("id")
            assert img.size["width"] > 0 and img.size["height"] > 0, img.get_attribute("id")
        # the numbers as the browser shows them (rendered text, not the source)
        cells = driver.execute_script(
            "return Array.from(document.querySelectorAll('[data-col]')).map(e => "
            "[e.closest('table, p.fidelity').id, (e.closest('tr') || {dataset: {key: 'fidelity'}}).dataset.key, "
            "e.dataset.col, e.innerText]);")
        assert check_numbers(root, [tuple(c) for c in cells]) > 300
    finally:
        driver.quit()


# ------------------------------------------------------------------------------------- make ablate, make report
@pytest.fixture(scope="module")
def made_ablation(tmp_path_factory):
    """`make ablate` at smoke scale (one delta's rows, kernel_size, and the anchors), two runs at a time: one sweep that
    the make ablate and make report tests share. Returns the results root, the command and its process."""
    root = tmp_path_factory.mktemp("make")
    command = ["make", "-s", "-o", "setup", "-o", "data", "ablate", f"PY={sys.executable}", "PROFILE=smoke",
               "DATA=synthetic", "SEEDS=0", "ABLATE_DELTAS=kernel_size", f"RUNS={root}/runs", f"RESULTS={root}",
               "ARGS=train.deterministic=true train.threads=1 train.device=cpu profile.epochs=1", "RUNS_AT_ONCE=2"]
    proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=900, env=make_env())
    return root, command, proc


def make_env() -> dict:
    return env() | {"PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("make") is None, reason="no make on this machine")
def test_make_ablate_trains_tabulates_and_skips_what_is_finished(made_ablation):
    """`make ablate` at smoke scale (one delta's rows and the anchors), then again: every run is skipped."""
    root, command, proc = made_ablation
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    sweep, out = root / "runs" / "ablate-smoke-synthetic", root / "ablate" / "smoke-synthetic"
    labels = ablation_plan.labels(["kernel_size"])
    assert sorted(p.name for p in sweep.iterdir() if p.is_dir()) == sorted(f"{label}-seed0" for label in labels)
    # RUNS_AT_ONCE=2: two runs at a time, so some runs' spans overlap: from config.yaml, written as training starts,
    # to summary.json, written after the evaluation and the throughput measurement (training alone, wall_time_s,
    # is a few tenths of a second at this scale: too short to overlap reliably on a busy machine)
    assert "n_jobs=2" in proc.stdout
    spans = sorted(((p.parent / "config.yaml").stat().st_mtime, p.stat().st_mtime)
                   for p in sweep.glob("*/summary.json"))
    assert any(later[0] < earlier[1] for earlier, later in zip(spans, spans[1:])), spans
    rows = {r["delta"]: r for r in csv.DictReader(open(out / "ablation.csv"))}
    runs = {r["run"]: r for r in csv.DictReader(open(out / "ablation_runs.csv"))}
    kernel = rows["kernel_size"]
    assert float(kernel["add_effect"]) == pytest.approx(
        float(runs["recipe+depthwise+kernel_size"]["top1_mean"]) - float(runs["recipe+depthwise"]["top1_mean"]),
        abs=1e-3)
    convnext, without = runs["separate_downsampling"], runs["separate_downsampling-kernel_size"]
    assert float(kernel["remove_effect"]) == pytest.approx(
        float(convnext["top1_mean"]) - float(without["top1_mean"]), abs=1e-3)
    assert rows["gelu"]["add_status"] == "missing"
    assert (out / "ablation.png").read_bytes().startswith(b"\x89PNG")
    assert "| kernel_size" in (out / "ablation.md").read_text()
    again = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=900, env=make_env())
    assert again.returncode == 0 and again.stdout.count("already finished") == 5, again.stdout[-3000:]


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("make") is None, reason="no make on this machine")
def test_make_report_after_real_smoke_runs(made_ablation):
    """Real training (two roadmap steps; the shared sweep's ablation rows), then `make report` finds them by
    convention."""
    root, _, made = made_ablation
    assert made.returncode == 0, made.stdout[-3000:] + made.stderr[-3000:]
    runs = root / "runs"
    run_cli("-m", "+step=resnet50,recipe", *SMOKE, "profile.epochs=1", f"out_root={runs}",
            "sweep_name=roadmap-smoke-synthetic", check=True, timeout=900)
    assert tabulate.main([str(runs / "roadmap-smoke-synthetic"), "--out", str(root / "roadmap/smoke-synthetic")]) \
        == 0
    proc = subprocess.run(["make", "-s", "-o", "setup", "-o", "data", f"PY={sys.executable}", "PROFILE=smoke",
                           "DATA=synthetic", f"RUNS={runs}", f"RESULTS={root}", "report"], cwd=ROOT,
                          capture_output=True, text=True, timeout=300, env=make_env())
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    page = root / "report" / "smoke-synthetic.html"
    parsed = parse(page)
    assert [img["id"] for img in parsed.images] == ["roadmap-0-figure", "roadmap-0-curves", "ablate-1-figure",
                                                    "ablate-1-curves"]
    kernel = csv_rows(root / "ablate/smoke-synthetic/ablation.csv", "delta")["kernel_size"]
    shown = {c[2]: c[3] for c in parsed.cells if c[0] == "ablate-1-table" and c[1] == "kernel_size"}
    assert_shown_equals_csv(shown["add_effect"], kernel["add_effect"], "kernel_size add_effect")
    assert "kernels/smoke-synthetic: not found" in page.read_text()


def test_the_roadmap_of_a_custom_sweep_name_gets_its_runs(results, tmp_path):
    """make report SWEEP=<name>: the roadmap table was made from runs/<name>, not runs/roadmap-<profile>-<data>,
    and the page still has its learning curves (as make tabulate and make dashboard find that sweep)."""
    root, _ = results
    mine = tmp_path / "runs" / "mine"
    shutil.copytree(root / "runs" / "roadmap-smoke-synthetic", mine)
    table = str(shutil.copytree(root / "roadmap" / "smoke-synthetic", tmp_path / "roadmap" / "smoke-synthetic"))
    without, with_sweep = tmp_path / "without.html", tmp_path / "with.html"
    assert report.main([table, "--runs", str(tmp_path / "runs"), "--out", str(without)]) == 0
    assert report.main([table, "--runs", str(tmp_path / "runs"), "--roadmap-sweep", str(mine),
                        "--out", str(with_sweep)]) == 0
    assert [img["id"] for img in parse(without).images] == ["roadmap-0-figure"]
    assert [img["id"] for img in parse(with_sweep).images] == ["roadmap-0-figure", "roadmap-0-curves"]
    assert f"--roadmap-sweep {mine}" in with_sweep.read_text()  # the page's own command says so

    def report_command(*variables: str) -> str:
        return subprocess.run(["make", "-s", "-n", "-o", "setup", "report", *variables], cwd=ROOT, text=True,
                              capture_output=True, check=True).stdout
    assert "--roadmap-sweep" not in report_command()  # the conventional sweep: the command as before
    assert "--roadmap-sweep experiments/runs/mine" in report_command("SWEEP=mine")
