"""AWQ through llm-compressor: AWQModifier (activation-aware scaling) + QuantizationModifier."""

from __future__ import annotations

from dataclasses import dataclass

from configs.errors import ConfigError
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
    stay at their defaults); autoawq (declared only: the legacy environment's code path is
    not written). On a machine without an accelerator, llm-compressor's pinning of cached
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
        self.backend = check_backend(self.name, self.options.backend, self.backends, ("llmcompressor", "gptqmodel"))
        self.environment = self.backend.environment
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

    def label(self) -> str:
        label = super().label() + ("" if self.quant.symmetric else "-asym")
        return label + ("-gptqmodel" if self.backend.name == "gptqmodel" else "")

    def load(self, source_dir, device="auto"):
        if self.backend.name != "gptqmodel":
            return super().load(source_dir, device)
        from models.loading import pick_device
        from quantize import gptqmodel_support

        return gptqmodel_support.load(source_dir, gptqmodel_support.awq_config(self.quant), self.dtype, pick_device(device))

    def num_parameters(self, model) -> int:
        if self.backend.name != "gptqmodel":
            return super().num_parameters(model)
        from quantize import gptqmodel_support

        return gptqmodel_support.num_parameters(model)

    def quantize(self, model, tokenizer, calibration):
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
        if self.backend.name == "gptqmodel":
            from quantize import gptqmodel_support

            return gptqmodel_support.save(model, tokenizer, folder)
        save_compressed(model, tokenizer, folder)
