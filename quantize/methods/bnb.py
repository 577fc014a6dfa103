"""bitsandbytes through transformers' BitsAndBytesConfig: quantized while loading.

Three methods share this module (one YAML each): `bnb_int8` (LLM.int8(): int8 weights per
output row, outlier activation columns in 16 bit), `bnb_nf4` and `bnb_fp4` (4-bit NormalFloat
or FP4 codes in blocks of 64 weights, with an absmax scale per block).
"""

from __future__ import annotations

from dataclasses import dataclass

from configs.errors import ConfigError, choices_error
from models.loading import pick_device
from quantize.methods.base import QuantMethod, register

COMPUTE_DTYPES = ("bfloat16", "float16", "float32")


class BitsAndBytes(QuantMethod):
    """Shared by the bitsandbytes methods: the `load()` hook quantizes; `quantize` is a no-op."""

    needs_calibration = False
    artifact_format = "bitsandbytes"
    # transformers serializes bitsandbytes weights (int8 + scales, packed 4-bit + absmax)
    # and `from_pretrained` reloads them without re-quantizing: quantized on disk.
    quantized_on_disk = True

    def load(self, source_dir, device: str = "auto"):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        device = pick_device(device)
        model = AutoModelForCausalLM.from_pretrained(
            source_dir,
            quantization_config=self.bnb_config(),
            dtype=getattr(torch, self.dtype),
            device_map=device,
        )
        return model.eval(), AutoTokenizer.from_pretrained(source_dir)

    def bnb_config(self):
        raise NotImplementedError

    def quantize(self, model, tokenizer, calibration):
        return model  # done by load()


@register
class BitsAndBytesInt8(BitsAndBytes):
    """bitsandbytes LLM.int8(): int8 weights per output channel, fp16 outlier columns.

    Paper: Dettmers et al., 2022, arXiv:2208.07339. Library: bitsandbytes via transformers
    `BitsAndBytesConfig(load_in_8bit=True)`; no calibration data. Settings: quant.bits 8,
    quant.group_size -1 (per row); method.threshold (activation magnitude above which a
    column is computed in 16 bit; 6.0 is the paper's). `lm_head` is not quantized.
    """

    name = "bnb_int8"
    supported_bits = (8,)
    supported_group_sizes = (-1,)

    @dataclass
    class Options:
        threshold: float = 6.0

        def validate(self) -> None:
            if self.threshold < 0:
                raise ConfigError(f"method.threshold={self.threshold} must be >= 0")

    def variant_label(self) -> str:
        return f"{self.name}-t{self.options.threshold:g}"

    def bnb_config(self):
        from transformers import BitsAndBytesConfig

        return BitsAndBytesConfig(load_in_8bit=True, llm_int8_threshold=self.options.threshold, llm_int8_skip_modules=["lm_head"])


class BitsAndBytes4bit(BitsAndBytes):
    quant_type: str
    supported_bits = (4,)
    supported_group_sizes = (64,)  # bitsandbytes' fixed 4-bit block size

    @dataclass
    class Options:
        double_quant: bool = True  # quantize the per-block scales too (~0.4 bit/weight saved)
        compute_dtype: str = "bfloat16"  # dtype of the matmul after dequantizing

        def validate(self) -> None:
            if self.compute_dtype not in COMPUTE_DTYPES:
                raise choices_error("method.compute_dtype", self.compute_dtype, COMPUTE_DTYPES)

    def variant_label(self) -> str:
        return f"{self.name}-{'dq' if self.options.double_quant else 'nodq'}-{self.options.compute_dtype}"

    def bnb_config(self):
        import torch
        from transformers import BitsAndBytesConfig

        return BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type=self.quant_type,
            bnb_4bit_use_double_quant=self.options.double_quant,
            bnb_4bit_compute_dtype=getattr(torch, self.options.compute_dtype),
            llm_int8_skip_modules=["lm_head"],
        )


@register
class BitsAndBytesNF4(BitsAndBytes4bit):
    """bitsandbytes NF4: 4-bit NormalFloat codes in blocks of 64, absmax scale per block.

    Paper: Dettmers et al., 2023 (QLoRA), arXiv:2305.14314. Library: bitsandbytes via
    transformers `BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4")`; no
    calibration data. Settings: quant.bits 4, quant.group_size 64 (fixed block);
    method.double_quant, method.compute_dtype (bfloat16, float16, float32).
    """

    name = "bnb_nf4"
    quant_type = "nf4"


@register
class BitsAndBytesFP4(BitsAndBytes4bit):
    """bitsandbytes FP4: 4-bit floating-point codes in blocks of 64, absmax scale per block.

    Library: bitsandbytes via transformers `BitsAndBytesConfig(load_in_4bit=True,
    bnb_4bit_quant_type="fp4")`; no calibration data. Settings as bnb_nf4.
    """

    name = "bnb_fp4"
    quant_type = "fp4"
