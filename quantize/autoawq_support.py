"""Glue for method=awq method.backend=autoawq: AutoAWQ 0.2.9, in `.venv-legacy`.

AutoAWQ is the library the origin pipeline used; its authors deprecated it (llm-compressor
and GPTQModel carry AWQ on). It loads the source checkpoint
(`AutoAWQForCausalLM.from_pretrained`), searches per-channel scales and rounds
(`.quantize(tokenizer, quant_config, calib_data=...)`) and saves its GEMM checkpoint
(`.save_quantized`: packed int32 weights; `quantization_config` quant_method awq, version
gemm). The lab's calibration samples go in as token ids; AutoAWQ concatenates them and
cuts blocks of the longest sample's length. The checkpoint is the AWQ GEMM format GPTQModel
also writes, so it reloads with the `gptqmodel` loader in `.venv-gptqmodel`, where lm-eval
is; AutoAWQ's own loader needs intel_extension_for_pytorch on a CPU. Only imported in the
legacy environment.
"""

from __future__ import annotations

from pathlib import Path

from configs.schema import QuantConfig
from models.loading import load_tokenizer
from quantize.methods.base import parameters_counting_packed


def load(source_dir: Path, dtype: str):
    """(AutoAWQ model wrapper, tokenizer) of the source checkpoint, on CPU."""
    import torch
    from awq import AutoAWQForCausalLM

    # AutoAWQ trusts remote code by default; the lab's other loaders do not
    model = AutoAWQForCausalLM.from_pretrained(str(source_dir), torch_dtype=getattr(torch, dtype), trust_remote_code=False)
    return model, load_tokenizer(source_dir)


def quantize(model, tokenizer, calibration, quant: QuantConfig, duo_scaling: bool):
    """Quantize in place from a `calibration.CalibrationSet` (its samples, as they are)."""
    samples = [list(ids) for ids in calibration.samples]
    quant_config = {"w_bit": quant.bits, "q_group_size": quant.group_size, "zero_point": not quant.symmetric,
                    "version": "GEMM"}
    model.quantize(tokenizer, quant_config=quant_config, calib_data=samples, duo_scaling=duo_scaling,
                   max_calib_samples=len(samples), max_calib_seq_len=max(len(s) for s in samples))
    return model


def save(model, tokenizer, folder: Path) -> None:
    model.save_quantized(str(folder))
    tokenizer.save_pretrained(folder)


def num_parameters(model) -> int:
    from awq.modules.linear.gemm import WQLinear_GEMM

    return parameters_counting_packed(model, WQLinear_GEMM)
