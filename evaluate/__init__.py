"""The lab's evaluation package: `python -m evaluate run|sweep|report`.

Why this file also serves Hugging Face's `evaluate`: our package has the same top-level
name as HF's library, and from the repo root ours comes first on sys.path. lm-eval (and
HF metric scripts) do `import evaluate` and expect HF's API (`evaluate.load`,
`evaluate.Metric`, ...). So this package is a superset of HF's: HF's package folder is
appended to `__path__`, which makes its submodules (`evaluate.loading`, `evaluate.module`,
...) importable under this name, and its top-level names are loaded from its
`__init__.py` on first access. Our own modules must therefore not reuse HF's submodule
names (config, utils, loading, module, evaluator, hub, info, inspect, naming, saving,
visualization, commands, evaluation_suite).
"""

from __future__ import annotations

from importlib import metadata
from pathlib import Path

_OURS = Path(__file__).resolve().parent


def _hf_evaluate_dir() -> Path | None:
    try:
        init = Path(metadata.distribution("evaluate").locate_file("evaluate/__init__.py"))
    except metadata.PackageNotFoundError:
        return None
    return init.parent if init.is_file() and init.parent.resolve() != _OURS else None


_HF_DIR = _hf_evaluate_dir()
if _HF_DIR is not None:
    __path__.append(str(_HF_DIR))  # noqa: F821  (__path__ is defined for packages)
_hf_loaded = False


def __getattr__(name: str):
    global _hf_loaded
    if (_OURS / f"{name}.py").is_file() or (_OURS / name / "__init__.py").is_file():
        import importlib  # `from evaluate import records`: ours, without loading HF's

        return importlib.import_module(f"{__name__}.{name}")
    if name.startswith("__") or _HF_DIR is None or _hf_loaded:
        raise AttributeError(f"module 'evaluate' has no attribute {name!r}")
    _hf_loaded = True
    init = _HF_DIR / "__init__.py"
    exec(compile(init.read_text(), str(init), "exec"), globals())
    return globals()[name] if name in globals() else __getattr__(name)
