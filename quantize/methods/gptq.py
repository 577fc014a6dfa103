"""GPTQ weight-only quantization through llm-compressor's GPTQModifier."""

from __future__ import annotations

from dataclasses import dataclass
from configs.errors import ConfigError, choices_error
from quantize.backends.llmcompressor import IGNORED_LAYERS, weight_scheme
from quantize.methods.base import QuantMethod, register

ACTORDERS = ("static", "none")  # static: by activation size, no runtime cost ("group" is gone from llm-compressor 0.14)


@register
class GPTQ(QuantMethod):
    """GPTQ: second-order (Hessian-aware) rounding, one layer at a time, from calibration data.

    Paper: Frantar et al., 2022, arXiv:2210.17323. Library: llm-compressor `GPTQModifier`
    (sequential pipeline); compressed-tensors `pack-quantized` artifact that reloads with
    `from_pretrained`. Settings: quant.bits (2, 3, 4, 8), quant.group_size (32, 64, 128,
    -1 = per channel), quant.symmetric; method.actorder (static: columns quantized in order
    of decreasing activation size, then stored in the original order; none: in place order),
    method.dampening_frac (added to the Hessian diagonal, as a fraction of its mean),
    method.backend: llmcompressor (main environment); gptqmodel (GPTQModel in its own
    environment, `.venv-gptqmodel`: `python -m quantize` hands the run to it; actorder
    static/none map to its desc_act true/false, dampening_frac to damp_percent; artifact in
    GPTQ format, packed int32, reloaded with the `gptqmodel` loader); auto-gptq (declared
    only: the legacy environment's code path is not written). `lm_head` stays in full
    precision.
    """

    name = "gptq"
    supported_bits = (2, 3, 4, 8)
    needs_calibration = True
    backends = ("llmcompressor", "gptqmodel", "auto-gptq")

    @dataclass
    class Options:
        actorder: str = "static"
        dampening_frac: float = 0.01
        backend: str = "llmcompressor"

        def validate(self) -> None:
            if self.actorder not in ACTORDERS:
                raise choices_error("method.actorder", self.actorder, ACTORDERS)
            if not 0 < self.dampening_frac < 1:
                raise ConfigError(f"method.dampening_frac={self.dampening_frac} must be in (0, 1)")

    def variant_label(self) -> str:
        return super().variant_label() + ("" if self.options.actorder == "static" else f"-ao{self.options.actorder}")

    def recipe(self, calibration):
        from llmcompressor.modifiers.gptq import GPTQModifier

        return GPTQModifier(
            config_groups={"group_0": weight_scheme(self.quant)},
            ignore=IGNORED_LAYERS,
            actorder=None if self.options.actorder == "none" else self.options.actorder,
            dampening_frac=self.options.dampening_frac,
        )
