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
    points of that search), method.backend (llmcompressor; gptqmodel and autoawq live in
    other environments). On a machine without an accelerator, llm-compressor's pinning of
    cached activations is skipped (see `cpu_safe_intermediates_cache`).
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
        self.environment = check_backend(self.name, self.options.backend, self.backends, ("llmcompressor",)).environment

    def label(self) -> str:
        return super().label() + ("" if self.quant.symmetric else "-asym")

    def quantize(self, model, tokenizer, calibration):
        from llmcompressor.modifiers.quantization import QuantizationModifier
        from llmcompressor.modifiers.transform import AWQModifier

        recipe = [
            AWQModifier(duo_scaling=self.options.duo_scaling, n_grid=self.options.n_grid),
            QuantizationModifier(config_groups={"group_0": weight_scheme(self.quant)}, ignore=IGNORED_LAYERS),
        ]
        with cpu_safe_intermediates_cache():
            return run_calibrated_oneshot(model, recipe, calibration)

    def save(self, model, tokenizer, folder):
        save_compressed(model, tokenizer, folder)
