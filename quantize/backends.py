"""Backend libraries and the environments they live in.

The libraries' pins conflict (GPTQModel needs a newer torch/transformers than
llm-compressor accepts; AutoAWQ/AutoGPTQ need transformers 4), so each lives in its own
virtual environment: `.venv` (main) or `.venv-<environment>`, built by
`scripts/setup.sh <environment>` from `requirements/<environment>.txt`. A method that can
run on several backends (`method.backend=`) checks here, before any weight is loaded,
that the chosen backend's environment is the one running, and otherwise says what is
missing, the command that builds it and the maintained alternative.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from configs.errors import ConfigError, choices_error

REPO_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Backend:
    name: str
    environment: str  # main, or the <name> of .venv-<name>
    library: str  # what it is, for messages and the manifest


BACKENDS = {
    "llmcompressor": Backend("llmcompressor", "main", "llm-compressor (maintained)"),
    "gptqmodel": Backend("gptqmodel", "gptqmodel", "GPTQModel (maintained successor of AutoGPTQ/AutoAWQ)"),
    "autoawq": Backend("autoawq", "legacy", "AutoAWQ (archived; the origin pipeline's library)"),
    "auto-gptq": Backend("auto-gptq", "legacy", "AutoGPTQ (unmaintained; does not import under transformers 5)"),
}


def venv_dir(environment: str) -> Path:
    return REPO_ROOT / (".venv" if environment == "main" else f".venv-{environment}")


def running_environment() -> str | None:
    """The lab environment this interpreter belongs to (None: not one of the lab's venvs)."""
    prefix = Path(sys.prefix).resolve()
    if prefix == venv_dir("main").resolve():
        return "main"
    if prefix.parent == REPO_ROOT and prefix.name.startswith(".venv-"):
        return prefix.name[len(".venv-"):]
    return None


def check_backend(method: str, backend: str, allowed: tuple[str, ...], implemented: tuple[str, ...]) -> Backend:
    """The `Backend` for `method.backend=<backend>`, or one clear ConfigError line.

    `implemented`: the backends the method can run from this code (the others are declared
    so that choosing them says where they live instead of "unknown value").
    """
    if backend not in allowed:
        raise choices_error("method.backend", backend, allowed)
    chosen = BACKENDS[backend]
    here = running_environment()
    if backend in implemented and chosen.environment == (here or "main"):  # outside the lab's venvs: main
        return chosen
    venv = venv_dir(chosen.environment)
    alternative = "method.backend=llmcompressor (maintained, in the main environment)"
    if not (venv / "bin" / "python").exists():
        raise ConfigError(
            f"method={method} method.backend={backend} uses {chosen.library}, which runs in the "
            f"'{chosen.environment}' environment; it is not built here ({venv.name} is missing): "
            f"run `scripts/setup.sh {chosen.environment}`, or use {alternative}"
        )
    raise ConfigError(
        f"method={method} method.backend={backend} uses {chosen.library} in the '{chosen.environment}' "
        f"environment ({venv.name}), and running it from the '{here or 'current'}' environment is not wired "
        f"yet: run `{venv.name}/bin/python -m quantize ...`, or use {alternative}"
    )
