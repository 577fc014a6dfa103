#!/usr/bin/env bash
# Create the lab's Python environments. Usage: scripts/setup.sh [main] [other envs...]
#   main (default): .venv with requirements/main.txt (llm-compressor, hqq, bitsandbytes,
#   lm-eval, the lab). Other environments (e.g. gptqmodel, legacy) hold backends whose
#   pins conflict with main; each is .venv-<name> built from requirements/<name>.txt, then
#   scripts/setup_<name>.sh VENV where one exists (gguf: compiles llama.cpp, cached).
# Re-running is cheap: an environment whose requirements file is unchanged is kept.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
envs=("$@")
[ ${#envs[@]} -eq 0 ] && envs=(main)

for env in "${envs[@]}"; do
    requirements="requirements/$env.txt"
    if [ ! -f "$requirements" ]; then
        echo "error: unknown environment '$env'; choices: $(ls requirements | sed 's/\.txt$//' | tr '\n' ' ')" >&2
        exit 2
    fi
    venv=".venv"; [ "$env" != main ] && venv=".venv-$env"
    stamp="$venv/.requirements.sha256"
    extra="scripts/setup_$env.sh"
    wanted=$(cat "$requirements" $( [ -f "$extra" ] && echo "$extra") | sha256sum | cut -d' ' -f1)
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$wanted" ]; then
        echo "environment $env is up to date ($venv)"
        continue
    fi
    echo "building environment $env in $venv from $requirements"
    "$PYTHON" -m venv "$venv"
    "$venv/bin/pip" install --quiet -r "$requirements"
    [ -f "$extra" ] && bash "$extra" "$venv"
    echo "$wanted" > "$stamp"
    echo "environment $env ready: $venv/bin/python"
done
