"""AWQ through llm-compressor: AWQModifier (activation-aware scaling) + QuantizationModifier."""

from __future__ import annotations

from dataclasses import dataclass

from configs.errors import ConfigError
from quantize.backends.llmcompressor import IGNORED_LAYERS, weight_scheme
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
    backends = ("llmcompressor", "gptqmodel", "autoawq")

    @dataclass
    class Options:
        duo_scaling: bool = True
        n_grid: int = 20
        backend: str = "llmcompressor"

        def validate(self) -> None:
            if self.n_grid < 1:
                raise ConfigError(f"method.n_grid={self.n_grid} must be >= 1")

    def variant_label(self) -> str:
        return super().variant_label() + ("" if self.quant.symmetric else "-asym")

    def recipe(self, calibration):
        from llmcompressor.modifiers.quantization import QuantizationModifier
        from llmcompressor.modifiers.transform import AWQModifier

        return [
            AWQModifier(duo_scaling=self.options.duo_scaling, n_grid=self.options.n_grid),
            QuantizationModifier(config_groups={"group_0": weight_scheme(self.quant)}, ignore=IGNORED_LAYERS),
        ]
