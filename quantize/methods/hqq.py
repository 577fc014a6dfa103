"""HQQ (Half-Quadratic Quantization) through the hqq library; data-free, own file format."""

from __future__ import annotations

from dataclasses import dataclass

from configs.errors import ConfigError, choices_error
from configs.schema import PER_CHANNEL
from models.loading import pick_device
from quantize.methods.base import QuantMethod, register

AXES = (0, 1)


@register
class HQQ(QuantMethod):
    """HQQ: per-group scale and zero point found by a half-quadratic solver (no data).

    Blog/paper: Badri & Shaji, 2023, "Half-Quadratic Quantization of Large Machine Learning
    Models". Library: hqq (`AutoHQQHFModel.quantize_model`; transformers 5's `HqqConfig`
    is not implemented). Every linear layer but `lm_head` becomes an `HQQLinear`
    holding bit-packed codes. The library saves its own format (`config.json` +
    `qmodel.pt`), so the manifest names the `hqq` loader, which `models.loading` uses.
    Settings: quant.bits (1, 2, 3, 4, 8), quant.group_size (32, 64, 128, -1 = a whole row),
    quant.symmetric must be false (HQQ always has a zero point); method.axis (1: groups along
    the input dimension, what the fast kernels want; 0: along the output dimension).
    """

    name = "hqq"
    supported_bits = (1, 2, 3, 4, 8)
    artifact_format = "hqq"
    loader = "hqq"
    artifact_version = 2  # 2: generation_config.json saved beside qmodel.pt

    @dataclass
    class Options:
        axis: int = 1

        def validate(self) -> None:
            if self.axis not in AXES:
                raise choices_error("method.axis", self.axis, AXES)

    def validate(self) -> None:
        super().validate()
        if self.quant.symmetric:
            raise ConfigError("method=hqq quantizes with a zero point (asymmetric) only; set quant.symmetric=false")

    def quant_config(self) -> dict:
        from hqq.core.quantize import BaseQuantizeConfig

        group = None if self.quant.group_size == PER_CHANNEL else self.quant.group_size
        return BaseQuantizeConfig(nbits=self.quant.bits, group_size=group, axis=self.options.axis)

    def variant_label(self) -> str:
        return super().variant_label() + f"-ax{self.options.axis}"

    def load(self, source_dir, device="auto"):
        self.device = pick_device(device)  # hqq moves each layer there and quantizes it there
        return super().load(source_dir, device)

    def quantize(self, model, tokenizer, calibration):
        import torch
        from hqq.models.hf.base import AutoHQQHFModel

        AutoHQQHFModel.quantize_model(
            model, quant_config=self.quant_config(), compute_dtype=getattr(torch, self.dtype),
            device=getattr(self, "device", "cpu"),
        )
        return model

    def save(self, model, tokenizer, folder):
        from hqq.models.hf.base import AutoHQQHFModel

        AutoHQQHFModel.save_quantized(model, str(folder))
        model.generation_config.save_pretrained(folder)  # hqq writes only config.json + qmodel.pt
        tokenizer.save_pretrained(folder)
