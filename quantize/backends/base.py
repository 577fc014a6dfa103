"""The libraries a method can run through, each in the environment it is installed in.

A method that wraps one library for several backends (GPTQ: llm-compressor or GPTQModel)
holds the chosen `Backend` object (`method.backend=<name>`) and hands it the work:
loading the source checkpoint, quantizing, saving, counting parameters. The backend says
which environment it runs in (`common.environments`), what its checkpoints are and how
they reload, and checks the method's settings it cannot do before any weight is loaded.
A backend is one module in this package defining a `Backend` subclass decorated with
`@register`; the methods that can run through it list its name in their `backends`.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Optional

from configs.errors import ConfigError, choices_error
from models.loading import load_model
from quantize.registry import import_modules

# Said where a run needs an environment that is not built, or a backend the lab does not run.
ALTERNATIVE = "method.backend=llmcompressor (maintained, in the main environment)"

_REGISTRY: dict[str, type["Backend"]] = {}


class Backend:
    """Base class: the defaults are those of a library that loads with transformers."""

    name: ClassVar[str]
    library: ClassVar[str]  # what it is, for messages
    environment: ClassVar[str] = "main"  # the venv it runs in (scripts/setup.sh <environment>)
    load_environment: ClassVar[Optional[str]] = None  # where its checkpoints load, if not `environment`
    loader: ClassVar[str] = "transformers"  # how models.loading reloads its checkpoints
    implemented: ClassVar[bool] = True  # False: declared, so that choosing it says why not

    def validate(self, method) -> None:
        """Reject settings of `method` this library cannot do (no weights loaded)."""

    def artifact_format(self, method) -> str:
        """What the weights on disk are, e.g. compressed-tensors."""
        raise NotImplementedError

    def load(self, method, source_dir: Path, device: str):
        """(model, tokenizer) of the source checkpoint, in `method.dtype`. Calibration-based
        libraries move layers to the accelerator themselves, so the model starts on CPU."""
        return load_model(source_dir, dtype=method.dtype, device="cpu")

    def quantize(self, method, model, tokenizer, calibration):
        raise NotImplementedError

    def save(self, method, model, tokenizer, folder: Path) -> None:
        raise NotImplementedError

    def num_parameters(self, model) -> int:
        return sum(p.numel() for p in model.parameters())


def register(cls: type[Backend]) -> type[Backend]:
    _REGISTRY[cls.name] = cls
    return cls


def available_backends() -> dict[str, type[Backend]]:
    """Every registered backend, importing each module of this package once."""
    import_modules("quantize.backends")
    return dict(_REGISTRY)


def build_backend(method: str, choice: str, allowed: tuple[str, ...]) -> Backend:
    """The backend object for `method.backend=<choice>`, or one clear ConfigError line.

    Backends the lab does not run are declared, so that choosing them says where they
    live and what to use instead, rather than "unknown value".
    """
    if choice not in allowed:
        raise choices_error("method.backend", choice, allowed)
    backend = available_backends()[choice]()
    if not backend.implemented:  # said whether or not its environment is built: building it would not help
        raise ConfigError(f"method={method} method.backend={choice} uses {backend.library}; the lab does not run it "
                          f"(its code path is not written): use {ALTERNATIVE}")
    return backend


def parameters_counting_packed(model, packed_linear_type: type) -> int:
    """Parameters of a model whose library packs linear weights into buffers (GPTQModel,
    AutoAWQ), counting each packed linear's weights (in x out) as the dense model did."""
    packed = sum(m.in_features * m.out_features for m in model.modules() if isinstance(m, packed_linear_type))
    return sum(p.numel() for p in model.parameters()) + packed
