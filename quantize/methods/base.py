"""The one interface every quantization method implements.

A method is one module in `quantize/methods/` defining a `QuantMethod` subclass decorated
with `@register`, plus one YAML in `hydra_conf/method/`. The class declares what it
accepts (bits, group sizes, calibration, device) so that a bad combination is rejected
before any weight is loaded, and wraps the maintained library that does the work: either
directly (hqq, bitsandbytes) or through one of the `backends` it lists (`quantize.backends`:
llm-compressor, GPTQModel, AutoAWQ), the first being its default and `method.backend=`
choosing another; the backend object it then holds loads, quantizes and saves, and says
which environment that runs in. Method-specific settings are the fields of its nested
`Options` dataclass and are set as `method.<field>=...`.

Lifecycle, driven by `quantize.pipeline`:
    method = build_method(job)                # validates quant + options
    method.check_model(model_config)           # dims vs group size, from config.json only
    model = method.quantize(model, tokenizer, calibration)  # CalibrationSet or None
    method.save(model, tokenizer, folder)      # into the artifact's temporary folder
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Optional

from configs.errors import ConfigError, choices_error
from configs.schema import PER_CHANNEL, QuantConfig
from models.loading import load_model
from quantize.backends.base import ALTERNATIVE, Backend, build_backend
from quantize.registry import import_modules

_REGISTRY: dict[str, type["QuantMethod"]] = {}


class QuantMethod:
    """Base class. Subclasses set the class attributes and implement `quantize`."""

    name: ClassVar[str]
    supported_bits: ClassVar[tuple[int, ...]] = ()
    supported_group_sizes: ClassVar[tuple[int, ...]] = (32, 64, 128, PER_CHANNEL)
    needs_calibration: ClassVar[bool] = False
    requires_cuda: ClassVar[bool] = False
    # The backends it runs through (quantize/backends/<name>.py), the default first; none:
    # it wraps its library itself. With several, `method.backend` (an Options field) picks.
    backends: ClassVar[tuple[str, ...]] = ()
    environment: ClassVar[str] = "main"  # the venv it runs in (scripts/setup.sh <environment>)
    load_environment: ClassVar[Optional[str]] = None  # where its artifact loads, if not `environment`
    artifact_format: ClassVar[str] = "dense"  # what the weights on disk are
    loader: ClassVar[str] = "transformers"  # how models.loading reloads the artifact
    quantized_on_disk: ClassVar[bool] = True  # False: quantized when loaded (bitsandbytes)
    # Bump when the method's code writes a different artifact for the same settings: it is
    # part of the fingerprint, so artifacts written by the old code are not reused.
    artifact_version: ClassVar[int] = 1

    @dataclass
    class Options:
        """Method-specific settings (`method.<field>`); none by default."""

    def __init__(self, quant: QuantConfig, options: "QuantMethod.Options", dtype: str = "bfloat16"):
        self.quant = quant
        self.options = options
        self.dtype = dtype  # the dtype the model is loaded and quantized in
        self.backend: Optional[Backend] = None  # set by validate() for a method with backends

    # -- validation, before any weight is loaded --------------------------------------
    def validate(self) -> None:
        if self.quant.type is not None:
            raise ConfigError(f"quant.type={self.quant.type} is a GGUF level: method={self.name} does not take it; "
                              "use method=gguf, or leave quant.type unset")
        if self.supported_bits and self.quant.bits not in self.supported_bits:
            raise ConfigError(
                f"quant.bits={self.quant.bits} is not supported by method={self.name}; "
                f"choices: {', '.join(map(str, self.supported_bits))}"
            )
        if self.supported_bits and self.quant.group_size not in self.supported_group_sizes:
            raise ConfigError(
                f"quant.group_size={self.quant.group_size} is not supported by method={self.name}; "
                f"choices: {', '.join(map(str, self.supported_group_sizes))} (-1 = per channel)"
            )
        if self.backends:
            self._use_backend(build_backend(self.name, getattr(self.options, "backend", self.backends[0]), self.backends))

    def _use_backend(self, backend: Backend) -> None:
        """Run through `backend`: its environment, checkpoint format and loader are the artifact's."""
        self.backend = backend
        self.environment, self.loader = backend.environment, backend.loader
        self.load_environment = backend.load_environment
        self.artifact_format = backend.artifact_format(self)
        backend.validate(self)

    def check_model(self, model_config: Any) -> None:
        """Reject a model whose linear input dims the group size does not divide."""
        group = self.quant.group_size
        if not self.supported_bits or group == PER_CHANNEL:
            return
        for dim_name, dim in linear_input_dims(model_config).items():
            if dim % group:
                raise ConfigError(
                    f"quant.group_size={group} does not divide {dim_name}={dim} of this model; "
                    f"choose a group size that divides it or -1 (per channel)"
                )

    # -- work ---------------------------------------------------------------------------
    def load(self, source_dir: Path, device: str = "auto"):
        """(model, tokenizer) to quantize, in `self.dtype`. Calibration-based libraries
        move layers to the accelerator themselves, so the model starts on CPU; a method
        that quantizes while loading (bitsandbytes) loads onto `device`."""
        if self.backend:
            return self.backend.load(self, source_dir, device)
        return load_model(source_dir, dtype=self.dtype, device="cpu")

    def label(self) -> str:
        """Short, human-readable id of the variant, e.g. rtn-w4a16-g128, with the backend's
        name when it is not the default (gptq-w4a16-g128-gptqmodel)."""
        other_backend = self.backend and self.backend.name != self.backends[0]
        return self.variant_label() + (f"-{self.backend.name}" if other_backend else "")

    def variant_label(self) -> str:
        """The method and its settings, e.g. rtn-w4a16-g128."""
        group = "ch" if self.quant.group_size == PER_CHANNEL else f"g{self.quant.group_size}"
        return f"{self.name}-w{self.quant.bits}a16-{group}"

    def recipe(self, calibration):
        """llm-compressor modifiers, for a method that runs through that backend."""
        raise NotImplementedError

    def quantize(self, model, tokenizer, calibration):
        """Quantize `model` (loaded on CPU in `self.dtype`) and return it.

        `calibration` is a `calibration.CalibrationSet` when `needs_calibration`, else None.
        """
        if self.backend:
            return self.backend.quantize(self, model, tokenizer, calibration)
        raise NotImplementedError

    def save(self, model, tokenizer, folder: Path) -> None:
        if self.backend:
            return self.backend.save(self, model, tokenizer, folder)
        model.save_pretrained(folder)
        tokenizer.save_pretrained(folder)

    def num_parameters(self, model) -> int:
        """The model's parameter count, for the manifest (backends that turn weights into
        packed buffers count those weights too)."""
        if self.backend:
            return self.backend.num_parameters(model)
        return sum(p.numel() for p in model.parameters())

    def plan_notes(self, model_config: Any) -> list[str]:
        """What a sweep's --dry-run should say about this method on this model (config.json only)."""
        return []

    def manifest_fields(self) -> dict:
        """What the manifest records about the quantized artifact beyond the common fields
        (called after save; a field named here replaces the common one, e.g. weight_bits)."""
        return {}

    def runs_in(self) -> str:
        """What runs where, for messages about environments."""
        uses = f" method.backend={self.backend.name} uses {self.backend.library}, which" if len(self.backends) > 1 else ""
        return f"method={self.name}{uses} runs in the '{self.environment}' environment"

    def alternative(self) -> Optional[str]:
        """Another way to run this method where its environment is missing, if there is one."""
        return ALTERNATIVE if len(self.backends) > 1 else None

    def describe(self) -> dict:
        """What goes into the manifest about the method."""
        return {
            "name": self.name,
            "options": dataclasses.asdict(self.options),
            "needs_calibration": self.needs_calibration,
            "environment": self.environment,
            "artifact_format": self.artifact_format,
            "loader": self.loader,
            "quantized_on_disk": self.quantized_on_disk,
            "artifact_version": self.artifact_version,
            # only when it differs, so that other methods' fingerprints stay as they were
            **({"load_environment": self.load_environment} if self.load_environment not in (None, self.environment) else {}),
        }


def linear_input_dims(model_config: Any) -> dict[str, int]:
    """The input widths of the quantized linear layers of a decoder-only transformer."""
    text_config = getattr(model_config, "text_config", None) or model_config
    hidden = text_config.hidden_size
    heads = text_config.num_attention_heads
    head_dim = getattr(text_config, "head_dim", None) or hidden // heads
    return {
        "hidden_size": hidden,
        "intermediate_size": text_config.intermediate_size,
        "num_attention_heads*head_dim": heads * head_dim,
    }


def register(cls: type[QuantMethod]) -> type[QuantMethod]:
    _REGISTRY[cls.name] = cls
    return cls


def available_methods() -> dict[str, type[QuantMethod]]:
    """Every registered method, importing each module of this package once."""
    import_modules("quantize.methods")
    return dict(sorted(_REGISTRY.items()))


def build_method(method_settings: dict, quant: QuantConfig, dtype: str = "bfloat16") -> QuantMethod:
    """The validated method object for `method.*` and `quant.*` settings."""
    settings = dict(method_settings)
    name = settings.pop("name", None)
    methods = available_methods()
    if name not in methods:
        raise choices_error("method", name, methods)
    cls = methods[name]
    method = cls(quant, _build_options(cls, settings), dtype)
    method.validate()
    return method


def _build_options(cls: type[QuantMethod], settings: dict) -> QuantMethod.Options:
    fields = {f.name: f for f in dataclasses.fields(cls.Options)}
    for key, value in settings.items():
        if key not in fields:
            valid = ", ".join(fields) or "none"
            raise ConfigError(f"unknown setting 'method.{key}' for method={cls.name}; valid keys: name, {valid}")
    options = cls.Options(**settings)
    if hasattr(options, "validate"):
        options.validate()
    return options
