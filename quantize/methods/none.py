"""The baseline: the model unchanged, saved in `model.dtype` like any other artifact."""

from __future__ import annotations

from quantize.methods.base import QuantMethod, register


@register
class NoQuantization(QuantMethod):
    """No quantization (the FP32/FP16/BF16 reference every variant is compared with).

    Settings: none; `quant.*` is ignored. The dtype is `model.dtype`.
    """

    name = "none"
    supported_bits = ()  # quant.bits is not used

    def variant_label(self) -> str:
        return f"none-{self.dtype}"

    def quantize(self, model, tokenizer, calibration):
        return model
