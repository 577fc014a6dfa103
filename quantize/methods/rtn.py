"""Round-to-nearest weight-only quantization through llm-compressor."""

from __future__ import annotations

from quantize.backends.llmcompressor import IGNORED_LAYERS, weight_scheme
from quantize.methods.base import QuantMethod, register


@register
class RoundToNearest(QuantMethod):
    """RTN: each weight group is scaled to the integer grid and rounded; no data needed.

    Library: llm-compressor `QuantizationModifier` (data-free pipeline); the artifact is
    in compressed-tensors `pack-quantized` format and reloads with `from_pretrained`.
    Settings: quant.bits (2, 3, 4, 8), quant.group_size (32, 64, 128, -1 = per channel),
    quant.symmetric. `lm_head` is left in full precision.
    """

    name = "rtn"
    supported_bits = (2, 3, 4, 8)
    backends = ("llmcompressor",)

    def recipe(self, calibration):
        from llmcompressor.modifiers.quantization import QuantizationModifier

        return QuantizationModifier(config_groups={"group_0": weight_scheme(self.quant)}, ignore=IGNORED_LAYERS)
