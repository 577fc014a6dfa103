#!/usr/bin/env bash
# One command on a CUDA machine: every method on CUDA, on Qwen3-0.6B / Qwen2.5-1.5B /
# Qwen2.5-3B shapes (random weights) and the tiny family; quantize time, peak VRAM,
# decode tokens/s, time to first token, latency at batch 1 and 32, and decode
# throughput against the memory-bandwidth bound. Writes benchmarks/results/gpu_check.json
# and the results table of docs/benchmarks.md. Logic: benchmarks/gpu_check.py.
#
# Usage:
#   bash scripts/gpu_check.sh [benchmarks.gpu_check args...]   e.g. --models qwen3-0.6b-shape --methods none,rtn
#   bash scripts/gpu_check.sh --download-wheels [--python python3.12] [--have FILE]
#       # on a machine WITH network, before going to an offline GPU machine (scripts/gpu_wheels.py)
#
# Which Python it uses, in order:
#   1. .venv-cuda/bin/python, if it exists and its torch sees CUDA;
#   2. a system python3 whose torch sees CUDA (a GPU image with PyTorch preinstalled, e.g. the
#      lab's lent GPU machines, which have NO network): the pinned packages it lacks are
#      installed from the wheels in $QLAB_WHEELS (default .whl/, made by --download-wheels
#      and carried to the machine) and any .whl-*/ folders (parts: see docs/benchmarks.md)
#      into /tmp/qlab-site, put first on PYTHONPATH; the
#      image's own CUDA torch is used (a CUDA torch wheel is ~1 GB: it cannot be carried);
#   3. with network and CUDA but no CUDA torch: builds .venv-cuda from requirements/main.txt
#      with torch from the PyTorch CUDA index ($QLAB_TORCH_INDEX, default cu128);
#   4. no CUDA at all: the main .venv on CPU; gpu_check then runs its small CPU subset and
#      prints, visibly, which CUDA parts it skipped and why.
# Versions that differ from requirements/main.txt are printed before the run and recorded
# in the JSON's machine.versions.
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1
WHEELS=${QLAB_WHEELS:-.whl}
TORCH_INDEX=${QLAB_TORCH_INDEX:-https://download.pytorch.org/whl/cu128}

cuda_python() {  # prints "yes" if $1's torch sees a CUDA device
    "$1" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" >/dev/null 2>&1 && echo yes || true
}

if [ "${1:-}" = "--download-wheels" ]; then
    # For an offline GPU machine with a CUDA torch of its own: wheels of what it lacks, built
    # with an interpreter of its Python version (scripts/gpu_wheels.py says why and how).
    shift
    exec python3 scripts/gpu_wheels.py --dest "$WHEELS" "$@"
fi

PY=""
if [ -x .venv-cuda/bin/python ] && [ -n "$(cuda_python .venv-cuda/bin/python)" ]; then
    PY=.venv-cuda/bin/python
elif command -v python3 >/dev/null && [ -n "$(cuda_python python3)" ]; then
    PY=$(command -v python3)
    carried=$(ls "$WHEELS"/*.whl .whl-*/*.whl 2>/dev/null || true)
    if [ -n "$carried" ] || [ -d /tmp/qlab-site ]; then
        # Wheels may also come in parts over several calls to a machine that stays warm
        # (a carry limit): each call adds its part.
        if [ -n "$carried" ]; then
            echo "installing $(echo "$carried" | wc -l) carried wheels into /tmp/qlab-site (no network needed)"
            # shellcheck disable=SC2086
            python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
                --target /tmp/qlab-site $carried
        fi
        export PYTHONPATH=/tmp/qlab-site${PYTHONPATH:+:$PYTHONPATH}
    elif python3 -m pip download --no-deps -q -d /tmp/qlab-probe hydra-core==1.3.2 >/dev/null 2>&1; then
        echo "building .venv-cuda on the system CUDA torch (network available)"
        python3 -m venv --system-site-packages .venv-cuda
        grep -vE '^\s*torch==' requirements/main.txt > /tmp/qlab-gpu-requirements.txt
        .venv-cuda/bin/pip install -q -r /tmp/qlab-gpu-requirements.txt
        PY=.venv-cuda/bin/python
    else
        echo "warning: no $WHEELS/ and no network: using the image's packages as they are" >&2
    fi
elif command -v nvidia-smi >/dev/null && nvidia-smi >/dev/null 2>&1; then
    echo "CUDA device found but no CUDA torch: building .venv-cuda (torch from $TORCH_INDEX)"
    python3 -m venv .venv-cuda
    .venv-cuda/bin/pip install -q "$(grep -E '^torch==' requirements/main.txt)" --index-url "$TORCH_INDEX"
    .venv-cuda/bin/pip install -q -r requirements/main.txt
    PY=.venv-cuda/bin/python
else
    echo "no CUDA device: running the CPU subset with the main environment"
    bash scripts/setup.sh main >/dev/null
    export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
    PY=.venv/bin/python
fi

# What is installed vs the pins (printed, not fatal: the image's torch is not the pinned one).
"$PY" - <<'EOF'
import re
from importlib import metadata
pins = dict(re.match(r"([A-Za-z0-9_.\-]+)==(\S+)", l).groups() for l in open("requirements/main.txt")
            if re.match(r"[A-Za-z0-9_.\-]+==", l))
for name, pinned in pins.items():
    try:
        have = metadata.version(name)
    except metadata.PackageNotFoundError:
        have = "MISSING"
    if have.split("+")[0] != pinned:
        print(f"  version differs from requirements/main.txt: {name} {have} (pinned {pinned})")
import torch
print(f"torch {torch.__version__}, CUDA available: {torch.cuda.is_available()}"
      + (f", {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else ""))
EOF

status=0
"$PY" -m benchmarks.gpu_check "$@" || status=$?
"$PY" -m benchmarks.summarize || true
exit $status
