"""AWQ through llm-compressor: AWQModifier (activation-aware scaling) + QuantizationModifier."""

from __future__ import annotations

from dataclasses import dataclass

from configs.errors import ConfigError
from configs.schema import PER_CHANNEL
from quantize.backends import check_backend
from quantize.llmcompressor_support import (
    IGNORED_LAYERS,
    cpu_safe_intermediates_cache,
    run_calibrated_oneshot,
    save_compressed,
    weight_scheme,
)
from quantize.methods.base import QuantMethod, register


@register
class AWQ(QuantMethod):
    """AWQ: scale the weight channels that see large activations before rounding.

    Paper: Lin et al., 2023, arXiv:2306.00978. Library: llm-compressor `AWQModifier`
    (grid search of per-channel scales from calibration data; it only rescales) followed by
    `QuantizationModifier` (the rounding); compressed-tensors artifact that reloads with
    `from_pretrained`. Settings: quant.bits (4, 8), quant.group_size (32, 64, 128, -1),
    quant.symmetric (AWQ's usual is asymmetric: the YAML sets false); method.duo_scaling
    (use weight as well as activation magnitudes in the scale search), method.n_grid (grid
    points of that search), method.backend: llmcompressor (main environment); gptqmodel
    (GPTQModel's AWQ in its own environment, `.venv-gptqmodel`: `python -m quantize` hands
    the run to it; 4-bit GEMM format, packed int32, reloaded with the `gptqmodel` loader;
    model.dtype bfloat16 or float16, as its AWQ modules refuse float32;
    its scale search always uses duo scaling and a 20-point grid, so those settings must
    stay at their defaults); autoawq (AutoAWQ, the origin pipeline's library, in
    `.venv-legacy`: 4-bit GEMM format, model.dtype float16, its grid fixed at 20 points;
    groups only, no per-channel; the checkpoint loads in `.venv-gptqmodel` with the `gptqmodel` loader, where
    `python -m evaluate run` hands it). On a machine without an accelerator, llm-compressor's pinning of cached
    activations is skipped (see `cpu_safe_intermediates_cache`).
    """

    name = "awq"
    supported_bits = (4, 8)
    needs_calibration = True
    artifact_format = "compressed-tensors"
    backends = ("llmcompressor", "gptqmodel", "autoawq")

    @dataclass
    class Options:
        duo_scaling: bool = True
        n_grid: int = 20
        backend: str = "llmcompressor"

        def validate(self) -> None:
            if self.n_grid < 1:
                raise ConfigError(f"method.n_grid={self.n_grid} must be >= 1")

    def validate(self) -> None:
        super().validate()
        self.backend = check_backend(self.name, self.options.backend, self.backends,
                                     ("llmcompressor", "gptqmodel", "autoawq"))
        self.environment = self.backend.environment
        if self.backend.name == "autoawq":
            self._validate_autoawq()
        if self.backend.name == "gptqmodel":
            self.artifact_format, self.loader = "awq-gemm", "gptqmodel"
            if self.quant.bits != 4:
                raise ConfigError(f"quant.bits={self.quant.bits} is not supported by method=awq method.backend=gptqmodel "
                                  "(GPTQModel's AWQ GEMM format is 4-bit); choices: 4")
            if self.dtype not in ("float16", "bfloat16"):  # AwqTorchLinear refuses float32 when packing
                raise ConfigError(f"model.dtype={self.dtype} is not supported by method=awq method.backend=gptqmodel "
                                  "(GPTQModel's AWQ modules take float16 or bfloat16); choices: bfloat16, float16")
            if (self.options.duo_scaling, self.options.n_grid) != (True, 20):
                raise ConfigError("method.duo_scaling and method.n_grid are llm-compressor settings: GPTQModel's AWQ "
                                  "always uses duo scaling and a 20-point grid; leave them at true and 20")

    def _validate_autoawq(self) -> None:
        self.artifact_format, self.loader, self.load_environment = "awq-gemm", "gptqmodel", "gptqmodel"
        if self.quant.bits != 4:
            raise ConfigError(f"quant.bits={self.quant.bits} is not supported by method=awq method.backend=autoawq "
                              "(AutoAWQ's GEMM format is 4-bit); choices: 4")
        if self.quant.symmetric:
            raise ConfigError("quant.symmetric=true is not supported by method=awq method.backend=autoawq "
                              "(AutoAWQ's GEMM format stores zero points); choices: false")
        if self.quant.group_size == PER_CHANNEL:
            raise ConfigError(f"quant.group_size={PER_CHANNEL} is not supported by method=awq method.backend=autoawq "
                              "(AutoAWQ's scale search works on groups); choices: 32, 64, 128")
        if self.dtype != "float16":
            raise ConfigError(f"model.dtype={self.dtype} is not supported by method=awq method.backend=autoawq "
                              "(AutoAWQ's GEMM kernels compute in float16); choices: float16")
        if self.options.n_grid != 20:
            raise ConfigError(f"method.n_grid={self.options.n_grid} is an llm-compressor setting: AutoAWQ's scale "
                              "search always uses a 20-point grid; leave it at 20")

    def label(self) -> str:
        label = super().label() + ("" if self.quant.symmetric else "-asym")
        return label + (f"-{self.backend.name}" if self.backend.name in ("gptqmodel", "autoawq") else "")

    def load(self, source_dir, device="auto"):
        if self.backend.name == "autoawq":
            from quantize import autoawq_support

            return autoawq_support.load(source_dir, self.dtype)
        if self.backend.name != "gptqmodel":
            return super().load(source_dir, device)
        from models.loading import pick_device
        from quantize import gptqmodel_support

        return gptqmodel_support.load(source_dir, gptqmodel_support.awq_config(self.quant), self.dtype, pick_device(device))

    def num_parameters(self, model) -> int:
        if self.backend.name == "autoawq":
            from quantize import autoawq_support

            return autoawq_support.num_parameters(model)
        if self.backend.name != "gptqmodel":
            return super().num_parameters(model)
        from quantize import gptqmodel_support

        return gptqmodel_support.num_parameters(model)

    def quantize(self, model, tokenizer, calibration):
        if self.backend.name == "autoawq":
            from quantize import autoawq_support

            return autoawq_support.quantize(model, tokenizer, calibration, self.quant, self.options.duo_scaling)
        if self.backend.name == "gptqmodel":
            from quantize import gptqmodel_support

            return gptqmodel_support.quantize(model, calibration)
        from llmcompressor.modifiers.quantization import QuantizationModifier
        from llmcompressor.modifiers.transform import AWQModifier

        recipe = [
            AWQModifier(duo_scaling=self.options.duo_scaling, n_grid=self.options.n_grid),
            QuantizationModifier(config_groups={"group_0": weight_scheme(self.quant)}, ignore=IGNORED_LAYERS),
        ]
        with cpu_safe_intermediates_cache():
            return run_calibrated_oneshot(model, recipe, calibration)

    def save(self, model, tokenizer, folder):
        if self.backend.name == "autoawq":
            from quantize import autoawq_support

            return autoawq_support.save(model, tokenizer, folder)
        if self.backend.name == "gptqmodel":
            from quantize import gptqmodel_support

            return gptqmodel_support.save(model, tokenizer, folder)
        save_compressed(model, tokenizer, folder)
