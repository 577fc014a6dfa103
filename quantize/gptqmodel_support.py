"""Glue for method=gptq|awq method.backend=gptqmodel: GPTQModel's public API, in `.venv-gptqmodel`.

GPTQModel (the maintained successor of AutoGPTQ/AutoAWQ) loads the source checkpoint
itself with the quantize config (`GPTQModel.load(path, QuantizeConfig(...))`), quantizes
from a list of tokenized samples (`.quantize(calibration)`) and saves its own checkpoint
(`.save(folder)`: packed int32 weights, scales and zeros, `quantization_config` in
config.json, `quantize_config.json`). The lab's calibration set is passed as token ids,
unchanged, so the manifest's calibration fingerprint says which data was used. Artifacts
reload with `from_pretrained` where gptqmodel is installed (`models.loading`'s
`gptqmodel` loader). Only imported in that environment.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from configs.schema import PER_CHANNEL, QuantConfig
from quantize.methods.base import parameters_counting_packed

# GPTQModel runs its per-module work on a pool of CPU workers; on a 2-core machine its
# default did not start (shared/notes/cpu-feasibility.md), 2 workers did. Must be set
# before gptqmodel is imported; an explicit setting wins.
CPU_WORKERS = "2"


def import_gptqmodel():
    os.environ.setdefault("GPTQMODEL_CPU_WORKERS", CPU_WORKERS)
    import gptqmodel
    from gptqmodel.looper import loop_processor

    # GPTQModel writes per-module stats to ./logs (relative to the working directory, i.e.
    # into the user's checkout); keep them out of it.
    loop_processor._PROJECT_LOG_DIR = Path(tempfile.gettempdir()) / "qlab-gptqmodel-logs"
    return gptqmodel


def gptq_config(quant: QuantConfig, *, desc_act: bool, damp_percent: float):
    """desc_act: columns in order of decreasing activation size (the lab's actorder=static);
    GPTQModel's other reordering (act_group_aware, its default) is off, so actorder=none
    means no reordering at all."""
    gptqmodel = import_gptqmodel()
    return gptqmodel.QuantizeConfig(
        bits=quant.bits, group_size=_group(quant), sym=quant.symmetric, desc_act=desc_act, act_group_aware=False,
        damp_percent=damp_percent,
    )


def awq_config(quant: QuantConfig):
    gptqmodel = import_gptqmodel()
    from gptqmodel.quantization import FORMAT, METHOD

    return gptqmodel.QuantizeConfig(
        bits=quant.bits, group_size=_group(quant), sym=quant.symmetric, method=METHOD.AWQ, format=FORMAT.GEMM,
    )


def load(source_dir: Path, quantize_config, dtype: str, device: str):
    """(GPTQModel model wrapper, tokenizer) of the source checkpoint, ready to quantize."""
    import torch
    from transformers import AutoTokenizer

    gptqmodel = import_gptqmodel()
    model = gptqmodel.GPTQModel.load(str(source_dir), quantize_config, dtype=getattr(torch, dtype), device=device)
    return model, AutoTokenizer.from_pretrained(source_dir)


def quantize(model, calibration):
    """Quantize in place from a `calibration.CalibrationSet` (its samples, as they are)."""
    samples = [{"input_ids": ids, "attention_mask": [1] * len(ids)} for ids in calibration.samples]
    model.quantize(samples, batch_size=1, calibration_data_min_length=1)
    return model


def save(model, tokenizer, folder: Path) -> None:
    model.save(str(folder))
    tokenizer.save_pretrained(folder)


def num_parameters(model) -> int:
    from gptqmodel.nn_modules.qlinear import BaseQuantLinear

    return parameters_counting_packed(model, BaseQuantLinear)


def _group(quant: QuantConfig) -> int:
    return -1 if quant.group_size == PER_CHANNEL else quant.group_size
