"""The lab's Python environments, and handing a run to another one.

Some backend libraries' pins conflict (GPTQModel needs a newer torch/transformers than
llm-compressor accepts; AutoAWQ needs transformers 4), so each lives in its own virtual
environment: `.venv` (main) or `.venv-<environment>`, built by `scripts/setup.sh
<environment>` from `requirements/<environment>.txt`. `python -m quantize` and `python -m
evaluate run|sweep` validate everything in the environment they were started in, then,
when the work belongs to another environment, re-run the same command line with that
environment's interpreter (`dispatch`): a plain subprocess that reads the config and
paths and writes its artifact or records like any other run. If the environment is not
built, one line says what is missing and the command that builds it. Ctrl-C or SIGTERM
reaches the child too: it stops cleanly and says so, and the parent exits with its code.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Optional

from common.cli import SIGNALS, Interrupted
from configs.errors import ConfigError

REPO_ROOT = Path(__file__).resolve().parent.parent
STAMP = ".requirements.sha256"  # written by scripts/setup.sh when an environment is complete
DISPATCHED = "QLAB_DISPATCHED_TO"  # set in a re-run child: it must not hand the run on again


def venv_dir(environment: str) -> Path:
    return REPO_ROOT / (".venv" if environment == "main" else f".venv-{environment}")


def environment_python(environment: str) -> Path:
    return venv_dir(environment) / "bin" / "python"


def running_environment() -> str:
    """The lab environment this interpreter belongs to: `.venv-<name>` of this checkout for
    an environment scripts/setup.sh builds (requirements/<name>.txt), else main (also an
    interpreter outside the lab's venvs, and e.g. scripts/gpu_check.sh's .venv-cuda)."""
    prefix = Path(sys.prefix)  # as started: a .venv-<name> linked into a checkout counts for that checkout
    name = prefix.name.removeprefix(".venv-")
    defined = (REPO_ROOT / "requirements" / f"{name}.txt").is_file()
    in_checkout = prefix.parent.resolve() == REPO_ROOT.resolve()
    if in_checkout and name != prefix.name and defined:
        return name
    return "main"


def is_built(environment: str) -> bool:
    """scripts/setup.sh writes the stamp last: a venv whose install did not finish is not built."""
    venv = venv_dir(environment)
    return environment_python(environment).exists() and (environment == "main" or (venv / STAMP).is_file())


def missing_environment(what: str, environment: str, alternative: Optional[str] = None) -> ConfigError:
    instead = f", or use {alternative}" if alternative else ""
    return ConfigError(
        f"{what}; it is not built here ({venv_dir(environment).name} is missing or its install did not finish): "
        f"run `scripts/setup.sh {environment}`{instead}"
    )


def needs_dispatch(environment: str) -> bool:
    """Whether work for `environment` must be handed to that environment's interpreter."""
    return environment != running_environment()


def interpreter(environment: str, what: str, alternative: Optional[str] = None) -> Path:
    """The python of `environment`, or a ConfigError naming what is missing, how to build
    it and `alternative` (another way to do the work, if there is one)."""
    python = environment_python(environment)
    if not is_built(environment):
        raise missing_environment(what, environment, alternative)
    if os.environ.get(DISPATCHED) == environment:  # the child is not where it was sent: never loop
        raise ConfigError(f"{what}: {python} was started for it but does not run as the '{environment}' environment")
    return python


def dispatch(environment: str, module: str, argv: list[str], what: str, alternative: Optional[str] = None) -> int:
    """Re-run `python -m <module> <argv>` with `environment`'s interpreter (same cwd, same
    output streams); returns its exit code."""
    python = interpreter(environment, what, alternative)
    print(f"{what}: running it with {python}", file=sys.stderr, flush=True)
    env = {**os.environ, DISPATCHED: environment}
    # The child starts with SIGINT and SIGTERM blocked (a signal mask survives exec) and lets
    # them through once its handlers are installed (common.cli): one that arrives while it
    # starts is then handled like any other, not a traceback from the middle of an import.
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, SIGNALS)
    try:
        process = subprocess.Popen([str(python), "-m", module, *argv], env=env)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
    try:
        code = process.wait()
    except KeyboardInterrupt as interrupt:  # Interrupted (common.cli), or Ctrl-C without its handler
        signum = getattr(interrupt, "signum", signal.SIGINT)
        process.send_signal(signum)  # it may have had it from the terminal too: it ignores a second one
        code = _wait_or_kill(process, CHILD_STOP_SECONDS)
        if code == 128 + signum:  # it stopped cleanly and said so
            raise Interrupted(signum, said=True) from None
        raise
    return 128 - code if code < 0 else code  # killed by signal N: exit 128+N, as a shell reports it


CHILD_STOP_SECONDS = 120  # for an interrupted child to remove its temporary files and exit


def _wait_or_kill(process: subprocess.Popen, seconds: float) -> int:
    try:
        return process.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        process.kill()
        return process.wait()


def manifest_environment(manifest: dict | None) -> str:
    """The environment an artifact loads in: where it was made, unless its method says
    otherwise (AutoAWQ's checkpoints are made in legacy and load in gptqmodel)."""
    method = (manifest or {}).get("method") or {}
    return method.get("load_environment") or method.get("environment") or "main"
