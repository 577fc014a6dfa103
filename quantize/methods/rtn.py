"""Round-to-nearest weight-only quantization through llm-compressor."""

from __future__ import annotations

from quantize.llmcompressor_support import IGNORED_LAYERS, run_oneshot, save_compressed, weight_scheme
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
    artifact_format = "compressed-tensors"

    def quantize(self, model, tokenizer, calibration):
        from llmcompressor.modifiers.quantization import QuantizationModifier

        recipe = QuantizationModifier(
            config_groups={"group_0": weight_scheme(self.quant)}, ignore=IGNORED_LAYERS
        )
        return run_oneshot(model, recipe)

    def save(self, model, tokenizer, folder):
        save_compressed(model, tokenizer, folder)
