# modernize: `make roadmap` reproduces the ablation, `make test` checks the project. Every target bootstraps .venv.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
# torch and torchvision must be a matched pair (the registry's torchvision needs the CUDA build of torch).
TORCH  ?= torch==2.14.1 torchvision==0.29.1

PROFILE ?= cpu
DATA    ?= fashion_mnist
SEEDS   ?= 0
# How the runs of a sweep are launched: empty lets the profile's runs_at_once decide (one after another, or N side by
# side on this machine's device: modernize.sweep --launch); RUNS_AT_ONCE=N overrides that number; LAUNCHER=<name>
# (basic, joblib, slurm) is used as given.
LAUNCHER ?=
RUNS_AT_ONCE ?=
SWEEP   ?= roadmap-$(PROFILE)-$(DATA)
WANDB   ?= auto     # W&B mode for the sweep's table run: auto | online | offline | disabled
# Your combinations, trained in the same sweep and tabulated after the roadmap: space-separated row labels, each a
# roadmap step then +delta / -delta, e.g. EXTRA="separate_downsampling+silu separate_downsampling-gelu". Deltas of
# your own live in <dir>/delta/<name>.yaml: MODERNIZE_CONFIG_PATH=<dir> make roadmap EXTRA=... (docs/design.md, "Your own delta").
EXTRA   ?=

.PHONY: setup data browser test test-fast flops lint roadmap ablate peers report kernels tabulate dashboard bench clean

# Everything `python run.py` needs: the venv with the package and its dependencies, and the default data set.
setup: $(VENV)/.installed data

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install $(TORCH)
	$(PY) -m pip install -e ".[dev]"
	touch $@

# Fashion-MNIST from Debian's package (no download at run time); a no-op where it is present or apt is absent.
data:
	@if [ -d /usr/share/datasets/fashion-mnist ]; then echo "Fashion-MNIST: /usr/share/datasets/fashion-mnist"; \
	elif command -v apt-get >/dev/null; then \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  { $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq dataset-fashion-mnist; } || \
	    echo "could not install dataset-fashion-mnist: pass data.root=<folder with the idx files>"; \
	else echo "no apt-get: pass data.root=<folder with the Fashion-MNIST idx files>"; fi

# A headless browser for the report's test (Debian's chromium + chromium-driver); a no-op where one is present or apt
# is absent (the browser test then skips, saying why).
browser:
	@if command -v chromedriver >/dev/null && { command -v chromium >/dev/null || command -v chromium-browser >/dev/null; }; \
	then echo "browser: $$(command -v chromium || command -v chromium-browser)"; \
	elif command -v apt-get >/dev/null; then \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  { $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq chromium chromium-driver; } || \
	    echo "could not install chromium: the report's browser test will be skipped"; \
	else echo "no apt-get: install chromium and chromedriver for the report's browser test"; fi

# Everything (CI and README): the in-process tests and the real subprocess / torchrun / SIGKILL / multirun ones,
# one pytest worker per core (pytest-xdist; a test file stays on one worker so its module fixtures run once).
TEST_WORKERS ?= auto
test: setup data browser
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile

# The in-process tier for your own iterations (config, builder, tables, the loop on tiny models): its time is in README.
test-fast: setup
	$(PY) -m pytest -q -m "not slow" -n $(TEST_WORKERS) --dist load

flops: setup
	$(PY) -m modernize.flops_table --out experiments/flops

lint: setup
	$(PY) -m ruff check modernize tests run.py hubconf.py hydra_plugins experiments benchmarks

# A sweep, from launch to table, is modernize.training.sweeps (`python -m modernize.sweep run <kind>`): its Hydra
# multiruns (seed-major, so a sweep cut short leaves whole seeds; a failed run fails only itself; a finished one is
# skipped when run again), launched as LAUNCHER / RUNS_AT_ONCE / the profile say, then its table and figure.
SWEEP_RUN = $(PY) -m modernize.sweep run --profile $(PROFILE) --data $(DATA) --seeds $(SEEDS) --runs $(RUNS) \
            --results $(RESULTS) --args "$(ARGS)" --wandb $(strip $(WANDB)) \
            $(if $(strip $(LAUNCHER)),--launcher $(LAUNCHER)) $(if $(strip $(RUNS_AT_ONCE)),--runs-at-once $(RUNS_AT_ONCE))

# The whole roadmap, then EXTRA's combinations as a second multirun into the same sweep folder (a Hydra sweep is a
# product, and steps x extras is not what is wanted): experiments/roadmap/<profile>-<data>/.
roadmap: setup data
	$(SWEEP_RUN) roadmap --sweep-name $(SWEEP) --extra "$(EXTRA)"

# The ablation matrix (docs/ablation.md): each delta added alone to ResNet-50 with the modern recipe and removed alone
# from ConvNeXt-T, and the two anchors: experiments/ablate/<profile>-<data>/ablation.{md,csv,png}.
# ABLATE_DELTAS="kernel_size gelu" trains only those deltas' rows (and the anchors).
ABLATE_DELTAS ?=
# Where sweeps and report read and write runs and results (tests point them at a temporary folder).
RUNS    ?= experiments/runs
RESULTS ?= experiments
ablate: setup data
	$(SWEEP_RUN) ablate --deltas "$(ABLATE_DELTAS)"

# One self-contained HTML page (figures embedded, opens from a file, no network) of whatever this profile and data
# have results for: the roadmap, its learning curves, the kernel sweep, the ablation matrix. SWEEP=<name>: the
# roadmap's runs are that sweep's, as for make tabulate and make dashboard.
report: setup
	$(PY) -m modernize.report $(RESULTS)/roadmap/$(PROFILE)-$(DATA) $(RESULTS)/kernels/$(PROFILE)-$(DATA) \
	  $(RESULTS)/ablate/$(PROFILE)-$(DATA) $(RESULTS)/peers/$(PROFILE)-$(DATA) --runs $(RUNS) --out $(RESULTS)/report/$(PROFILE)-$(DATA).html \
	  $(if $(filter-out roadmap-$(PROFILE)-$(DATA),$(strip $(SWEEP))),--roadmap-sweep $(RUNS)/$(strip $(SWEEP)))

# The paper's comparisons (Tables 1 and 2): ConvNeXt-T/S/B and isotropic ConvNeXt-S beside Swin-T/S/B and DeiT-S,
# built by timm, same recipe and profile: experiments/peers/<profile>-<data>/. MODELS="swin_t deit_s" trains only those.
MODELS ?=
peers: setup data
	$(SWEEP_RUN) peers --models "$(MODELS)"

# Figure 2's kernel-size sweep (3/5/7/9/11) on the move_up_dwconv -> kernel_size step: experiments/kernels/.
kernels: setup data
	$(SWEEP_RUN) kernels

# README=README.md also copies the fidelity line and table into the README's marked block (the measured section).
tabulate: setup
	$(PY) -m modernize.tabulate experiments/runs/$(SWEEP) --out experiments/roadmap/$(PROFILE)-$(DATA) --wandb $(WANDB) \
	  $(if $(README),--readme $(README))

# The sweep's W&B workspace (docs/wandb.md): written as wandb_workspace.json next to the table,
# no network. DASHBOARD="--sync --save" uploads the sweep's offline runs, then saves the workspace and prints its URL.
DASHBOARD ?=
dashboard: setup
	$(PY) -m modernize.dashboard experiments/runs/$(SWEEP) --out experiments/roadmap/$(PROFILE)-$(DATA) $(DASHBOARD)

# ARGS: e.g. "--precision bf16 --channels-last" on a GPU, "--profile gpu" for what a profile's seed costs here.
bench: setup
	$(PY) benchmarks/bench.py $(ARGS)

clean:
	rm -rf $(VENV) .pytest_cache
