"""Backend libraries and the environments they live in, and handing a run to another one.

The libraries' pins conflict (GPTQModel needs a newer torch/transformers than
llm-compressor accepts; AutoAWQ/AutoGPTQ need transformers 4), so each lives in its own
virtual environment: `.venv` (main) or `.venv-<environment>`, built by
`scripts/setup.sh <environment>` from `requirements/<environment>.txt`. A method declares
the environment its chosen backend (`method.backend=`) runs in. `python -m quantize` and
`python -m evaluate run|sweep` validate everything in the environment they were started
in, then, when the work belongs to another environment, re-run the same command line with
that environment's interpreter (`dispatch`): a plain subprocess that reads the config and
paths and writes its artifact or records like any other run. If the environment is not
built, one line says what is missing, the command that builds it and the alternative.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from configs.errors import ConfigError, choices_error

REPO_ROOT = Path(__file__).resolve().parent.parent
ALTERNATIVE = "method.backend=llmcompressor (maintained, in the main environment)"
STAMP = ".requirements.sha256"  # written by scripts/setup.sh when an environment is complete
DISPATCHED = "QLAB_DISPATCHED_TO"  # set in a re-run child: it must not hand the run on again


@dataclass(frozen=True)
class Backend:
    name: str
    environment: str  # main, or the <name> of .venv-<name>
    library: str  # what it is, for messages and the manifest


BACKENDS = {
    "llmcompressor": Backend("llmcompressor", "main", "llm-compressor (maintained)"),
    "gptqmodel": Backend("gptqmodel", "gptqmodel", "GPTQModel (maintained successor of AutoGPTQ/AutoAWQ)"),
    # Measured in .venv-legacy (requirements/legacy.txt): AutoAWQ quantizes on CPU; its GEMM
    # checkpoints load with GPTQModel (.venv-gptqmodel, where lm-eval is) and, on a CPU, with
    # AutoAWQ's own loader only through intel_extension_for_pytorch. AutoGPTQ refuses to
    # quantize without CUDA ("requires CUDA available"), has no Qwen3, and its bundled CUDA
    # kernels fail to load against torch 2.6 (undefined symbol).
    "autoawq": Backend("autoawq", "legacy", "AutoAWQ 0.2.9 (deprecated by its authors; the origin pipeline's library)"),
    "auto-gptq": Backend("auto-gptq", "legacy", "AutoGPTQ 0.7.1 (unmaintained; quantizes only on a CUDA GPU, no Qwen3 "
                                                "support, its CUDA kernels do not load with torch 2.6)"),
}


def venv_dir(environment: str) -> Path:
    return REPO_ROOT / (".venv" if environment == "main" else f".venv-{environment}")


def running_environment() -> str:
    """The lab environment this interpreter belongs to (an interpreter outside the lab's
    venvs counts as main: it is how the main environment is used without .venv)."""
    prefix = Path(sys.prefix).resolve()
    backend_environments = {backend.environment for backend in BACKENDS.values()} - {"main"}
    if prefix.parent == REPO_ROOT.resolve() and prefix.name.removeprefix(".venv-") in backend_environments:
        return prefix.name.removeprefix(".venv-")
    return "main"  # also e.g. scripts/gpu_check.sh's .venv-cuda: the main set on CUDA


def check_backend(method: str, backend: str, allowed: tuple[str, ...], implemented: tuple[str, ...]) -> Backend:
    """The `Backend` for `method.backend=<backend>`, or one clear ConfigError line.

    `implemented`: the backends the lab can run (from whichever environment: a run is
    handed to the backend's environment by `dispatch`). The others are declared so that
    choosing them says where they live instead of "unknown value".
    """
    if backend not in allowed:
        raise choices_error("method.backend", backend, allowed)
    chosen = BACKENDS[backend]
    if backend in implemented:
        return chosen
    # Said whether or not its environment is built: building it would not make the run possible.
    raise ConfigError(f"method={method} method.backend={backend} uses {chosen.library}; the lab does not run it "
                      f"(its code path is not written): use {ALTERNATIVE}")


def environment_python(environment: str) -> Path:
    return venv_dir(environment) / "bin" / "python"


def is_built(environment: str) -> bool:
    """scripts/setup.sh writes the stamp last: a venv whose install did not finish is not built."""
    venv = venv_dir(environment)
    return environment_python(environment).exists() and (environment == "main" or (venv / STAMP).is_file())


def missing_environment(what: str, environment: str) -> ConfigError:
    return ConfigError(
        f"{what}; it is not built here ({venv_dir(environment).name} is missing or its install did not finish): "
        f"run `scripts/setup.sh {environment}`, or use {ALTERNATIVE}"
    )


def needs_dispatch(environment: str) -> bool:
    """Whether work for `environment` must be handed to that environment's interpreter."""
    return environment != running_environment()


def interpreter(environment: str, what: str) -> Path:
    """The python of `environment`, or a ConfigError naming what is missing and how to build it."""
    python = environment_python(environment)
    if not is_built(environment):
        raise missing_environment(what, environment)
    if os.environ.get(DISPATCHED) == environment:  # the child is not where it was sent: never loop
        raise ConfigError(f"{what}: {python} was started for it but does not run as the '{environment}' environment")
    return python


def dispatch(environment: str, module: str, argv: list[str], what: str) -> int:
    """Re-run `python -m <module> <argv>` with `environment`'s interpreter (same cwd, same
    output streams); returns its exit code."""
    python = interpreter(environment, what)
    print(f"{what}: running it with {python}", file=sys.stderr, flush=True)
    env = {**os.environ, DISPATCHED: environment}
    code = subprocess.run([str(python), "-m", module, *argv], env=env, check=False).returncode
    return 128 - code if code < 0 else code  # killed by signal N: exit 128+N, as a shell reports it


def manifest_environment(manifest: dict | None) -> str:
    """The environment an artifact loads in: where it was made, unless its method says
    otherwise (AutoAWQ's checkpoints are made in legacy and load in gptqmodel)."""
    method = (manifest or {}).get("method") or {}
    return method.get("load_environment") or method.get("environment") or "main"
