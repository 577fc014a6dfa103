#!/usr/bin/env bash
# Run the test suite: builds the main environment if needed, then pytest.
# Usage: bash scripts/test.sh [pytest args...]   e.g. bash scripts/test.sh -m "not slow"
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh main
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
exec .venv/bin/python -m pytest "$@"
