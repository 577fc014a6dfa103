"""AutoRound (SignRound) weight-only quantization, through llm-compressor's AutoRoundModifier."""

from __future__ import annotations

from dataclasses import dataclass

from configs.errors import ConfigError
from quantize.backends.llmcompressor import IGNORED_LAYERS, weight_scheme
from quantize.methods.base import QuantMethod, register


@register
class AutoRound(QuantMethod):
    """AutoRound: learn each weight's rounding direction (and clipping) by signed gradient
    descent on a block's output error, block by block, from calibration data.

    Paper: Cheng et al., 2023, arXiv:2309.05516. Library: auto-round (Intel), driven by
    llm-compressor's `AutoRoundModifier`, so the artifact is compressed-tensors like GPTQ's
    and reloads with `from_pretrained`. Runs on CPU (slowly: time grows with iters).
    Settings: quant.bits (2, 3, 4, 8), quant.group_size (32, 64, 128, -1),
    quant.symmetric; method.iters (tuning steps per block; the library's default is 200),
    method.batch_size (samples per step), method.lr (None: the library's 1/iters).
    """

    name = "autoround"
    supported_bits = (2, 3, 4, 8)
    needs_calibration = True
    backends = ("llmcompressor",)

    @dataclass
    class Options:
        iters: int = 200
        batch_size: int = 8
        lr: float | None = None

        def validate(self) -> None:
            for key in ("iters", "batch_size"):
                if getattr(self, key) < 1:
                    raise ConfigError(f"method.{key}={getattr(self, key)} must be >= 1")

    def variant_label(self) -> str:
        return super().variant_label() + f"-i{self.options.iters}"

    def recipe(self, calibration):
        import torch
        from llmcompressor.modifiers.autoround import AutoRoundModifier

        return AutoRoundModifier(
            config_groups={"group_0": weight_scheme(self.quant)},
            ignore=IGNORED_LAYERS,
            iters=self.options.iters,
            batch_size=min(self.options.batch_size, len(calibration)),
            lr=self.options.lr,
            enable_torch_compile=torch.cuda.is_available(),  # compiling on CPU costs more than it saves
        )
