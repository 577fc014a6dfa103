#!/usr/bin/env bash
# Set everything up on a fresh machine and run the demo on the tiny family:
# build the self-trained tiny models, then quantize each with the baseline and RTN.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh main
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
PY=.venv/bin/python

$PY -m models.tiny build
for model in tiny-s tiny-m tiny-l; do
    $PY -m quantize method=none model=$model
    $PY -m quantize method=rtn model=$model quant.bits=8 quant.group_size=-1
    $PY -m quantize method=rtn model=$model quant.bits=4 quant.group_size=32
done
echo
echo "artifacts (each folder: weights, tokenizer, config, manifest.json):"
find lab/artifacts -mindepth 2 -maxdepth 2 -type d -not -name '.*' | sort
