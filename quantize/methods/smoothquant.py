"""SmoothQuant W8A8: SmoothQuantModifier + GPTQModifier (int8 weights and activations)."""

from __future__ import annotations

from dataclasses import dataclass

from configs.errors import ConfigError
from quantize.backends.llmcompressor import IGNORED_LAYERS
from quantize.methods.base import QuantMethod, register


@register
class SmoothQuant(QuantMethod):
    """SmoothQuant: move activation outliers into the weights, then int8 weights and activations.

    Paper: Xiao et al., 2022, arXiv:2211.10438. Library: llm-compressor
    `SmoothQuantModifier` (per-channel smoothing from calibration activations) then
    `GPTQModifier` with the `W8A8` preset: int8 weights per output channel (symmetric),
    int8 activations per token, quantized dynamically at run time. compressed-tensors
    `int-quantized` artifact that reloads with `from_pretrained`. Settings: quant.bits 8 and
    quant.group_size -1 only (what W8A8 is); method.smoothing_strength (alpha in [0, 1]:
    how much of the activation range moves into the weights).
    """

    name = "smoothquant"
    supported_bits = (8,)
    supported_group_sizes = (-1,)
    needs_calibration = True
    backends = ("llmcompressor",)

    @dataclass
    class Options:
        smoothing_strength: float = 0.8

        def validate(self) -> None:
            if not 0 <= self.smoothing_strength <= 1:
                raise ConfigError(f"method.smoothing_strength={self.smoothing_strength} must be in [0, 1]")

    def validate(self) -> None:
        super().validate()
        if not self.quant.symmetric:
            raise ConfigError("method=smoothquant (W8A8) is symmetric only; set quant.symmetric=true")

    def variant_label(self) -> str:
        return f"{self.name}-w8a8-a{self.options.smoothing_strength:g}"

    def recipe(self, calibration):
        from llmcompressor.modifiers.gptq import GPTQModifier
        from llmcompressor.modifiers.transform import SmoothQuantModifier

        return [
            SmoothQuantModifier(smoothing_strength=self.options.smoothing_strength),
            GPTQModifier(targets="Linear", scheme="W8A8", ignore=IGNORED_LAYERS),
        ]
