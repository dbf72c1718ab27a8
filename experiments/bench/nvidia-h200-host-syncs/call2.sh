#!/bin/bash
# Session 5, second call: section 4 of the gpu profile, code before (0c1c6bd, .gpudata/old) and after the host-sync
# change, alternated twice, on two ConvNeXt-like steps.
set -u
export PYTHONUNBUFFERED=1
PY=$(command -v ${PY:-python3}); ROOT=$PWD
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 3
A="--precision bf16 --channels-last --sections 4 --profile gpu --steps inverted_bottleneck,separate_downsampling"
for round in 1 2; do
  echo "== old $round ${SECONDS}s"; (cd $ROOT/.gpudata/old && PYTHONPATH=/tmp/site:$ROOT/.gpudata/old timeout 60 $PY -m modernize.bench $A --out $OUT/old$round 2>&1 | grep '^| [0-9]')
  echo "== new $round ${SECONDS}s"; PYTHONPATH=/tmp/site:$ROOT timeout 60 $PY -m modernize.bench $A --out $OUT/new$round 2>&1 | grep '^| [0-9]'
done
echo "== done ${SECONDS}s"
