#!/usr/bin/env bash
# Set everything up on a fresh machine and run the demo on the tiny family: the
# self-trained tiny models ship in the repository (models/tiny/release, checked against its
# manifest; nothing is trained), swept over several methods and bit widths (quantize ->
# evaluate -> results store) on a 300-prompt slice of each task, then the comparison report.
# Rerunning it does no work that is already done.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh main gguf   # gguf: llama.cpp, compiled once (~6 CPU-min), for the GGUF levels
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false OMP_NUM_THREADS=1
PY=.venv/bin/python

echo "tiny family: $($PY -m models.tiny path)"
# A CPU-sized slice of the default sweep (python -m evaluate sweep runs all of it): the
# smallest and the largest size (11.8x apart), 300 held-out prompts per task.
$PY -m evaluate sweep sweep.name=demo-cpu 'sweep.models=[tiny-s,tiny-l]' 'sweep.eval_overrides=["eval.limit=300"]' \
    'sweep.methods=[{method: rtn, bits: [8, 4, 3, 2]}, {method: gptq, bits: [4, 3]}, {method: hqq, bits: [4, 2]}, {method: bnb_nf4}, {method: gguf, types: [Q8_0, Q4_K_M, Q2_K]}]' \
    launcher.max_parallel=2
echo
echo "artifacts: lab/artifacts   results: lab/results (table.parquet)"
echo "report:    lab/results/report/report.html and report.md"
