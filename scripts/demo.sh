#!/usr/bin/env bash
# Set everything up on a fresh machine and run the demo on the tiny family: build the
# self-trained tiny models (once; cached), sweep them over several methods and bit
# widths (quantize -> evaluate -> results store), and build the comparison report.
# Rerunning it does no work that is already done.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh main gguf   # gguf: llama.cpp, compiled once (~6 CPU-min), for the GGUF levels
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false OMP_NUM_THREADS=1
PY=.venv/bin/python

$PY -m models.tiny build
# A CPU-sized slice of the default sweep (python -m evaluate sweep runs all of it).
$PY -m evaluate sweep sweep.name=demo-cpu 'sweep.models=[tiny-s,tiny-m]' \
    'sweep.methods=[{method: rtn, bits: [8, 4, 3, 2]}, {method: gptq, bits: [4, 3]}, {method: hqq, bits: [4, 2]}, {method: bnb_nf4}, {method: gguf, types: [Q8_0, Q4_K_M, Q2_K]}]' \
    launcher.max_parallel=2
echo
echo "artifacts: lab/artifacts   results: lab/results (table.parquet)"
echo "report:    lab/results/report/report.html and report.md"
