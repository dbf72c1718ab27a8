#!/bin/bash
# Session 5 device check: (1) the host syncs taken out of the training step: bench section 3 of the code before
# (.gpudata/old = git archive 0c1c6bd) and after, twice, alternated; (2) section 4 of the gpu profile, eager, all
# steps; (3) train.compile (static shapes): section 3 and section 4 on three steps; (4) the CUDA tests and a real
# CUDA training run through the deferred finiteness check, eager and compiled.
# Local dry run: OUT=/tmp/o QUICK=1 bash .gpudata/gpu_session5.sh
set -u
export PYTHONUNBUFFERED=1
QUICK=${QUICK:-}
PY=$(command -v ${PY:-python3})
ROOT=$PWD
if [ -z "$QUICK" ]; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    || exit 3
  SITE=/tmp/site
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > $OUT/env.txt 2>&1
  B="--precision bf16 --channels-last"
  RUN="train.device=cuda train.precision=bf16 train.channels_last=true"
else
  SITE=${SITE:-$ROOT/.venv/lib/python3.11/site-packages}
  B="--quick --threads 1 --device cpu"
  RUN="train.device=cpu"
fi
export PYTHONPATH=$SITE:$ROOT
$PY -c "import torch, torchvision, hydra, omegaconf, fvcore, wandb, modernize.train; print(torch.__version__, torchvision.__version__, hydra.__version__, wandb.__version__)" 2>&1 | tee -a $OUT/env.txt
t() { echo "== $(date -u +%T) ${SECONDS}s $*"; }
bench_old() { (cd $ROOT/.gpudata/old && PYTHONPATH=$SITE:$ROOT/.gpudata/old timeout 90 $PY -m modernize.bench $B "$@"); }
bench_new() { timeout 90 $PY -m modernize.bench $B "$@"; }
for round in 1 2; do
  t old section 3 round $round; bench_old --sections 3 --out $OUT/old$round 2>&1 | grep '^|'
  t new section 3 round $round; bench_new --sections 3 --out $OUT/new$round 2>&1 | grep '^|'
done
S4=recipe,inverted_bottleneck,separate_downsampling
t new section 4 eager; bench_new --sections 4 --profile gpu --steps $S4 --out $OUT/s4-eager 2>&1 | grep '^|\|Training time'
t new section 3 compiled; timeout 150 $PY -m modernize.bench $B --compile --sections 3 --out $OUT/s3-compile 2>&1 \
  | grep '^|\|Error'
t new section 4 compiled; timeout 180 $PY -m modernize.bench $B --compile --sections 4 --profile gpu \
  --steps $S4 --out $OUT/s4-compile 2>&1 | grep '^|\|Training time\|Error'
t cuda tests; timeout 120 $PY -m pytest -q -p no:cacheprovider tests/test_augment.py 2>&1 | tail -3
for c in false; do
  t train compile=$c; timeout 150 $PY run.py +step=separate_downsampling profile=smoke data=synthetic $RUN \
    train.compile=$c logger.wandb.mode=disabled hydra.run.dir=/tmp/run-$c 2>&1 | tail -2
done
t done
ls -la $OUT
