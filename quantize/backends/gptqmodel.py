"""GPTQModel (maintained successor of AutoGPTQ/AutoAWQ), in `.venv-gptqmodel`: a backend of
method=gptq and method=awq (`method.backend=gptqmodel`).

GPTQModel loads the source checkpoint itself with the quantize config
(`GPTQModel.load(path, QuantizeConfig(...))`), quantizes from a list of tokenized samples
(`.quantize(calibration)`) and saves its own checkpoint (`.save(folder)`: packed int32
weights, scales and zeros, `quantization_config` in config.json, `quantize_config.json`).
The lab's calibration set is passed as token ids, unchanged, so the manifest's calibration
fingerprint says which data was used. Artifacts reload with `from_pretrained` where
gptqmodel is installed (`models.loading`'s `gptqmodel` loader). GPTQ: actorder static/none
map to its desc_act true/false, dampening_frac to damp_percent; GPTQ format. AWQ: 4-bit
GEMM format; model.dtype bfloat16 or float16 (its AWQ modules refuse float32 when
packing); its scale search always uses duo scaling and a 20-point grid.
"""

from __future__ import annotations

from pathlib import Path

from configs.errors import ConfigError
from configs.schema import PER_CHANNEL
from models.loading import import_gptqmodel, pick_device
from quantize.backends.base import Backend, parameters_counting_packed, register

FORMATS = {"gptq": "gptq", "awq": "awq-gemm"}


@register
class GPTQModel(Backend):
    name = "gptqmodel"
    library = "GPTQModel (maintained successor of AutoGPTQ/AutoAWQ)"
    environment = "gptqmodel"
    loader = "gptqmodel"

    def validate(self, method) -> None:
        if method.name != "awq":
            return
        if method.quant.bits != 4:
            raise ConfigError(f"quant.bits={method.quant.bits} is not supported by method=awq method.backend=gptqmodel "
                              "(GPTQModel's AWQ GEMM format is 4-bit); choices: 4")
        if method.dtype not in ("float16", "bfloat16"):  # AwqTorchLinear refuses float32 when packing
            raise ConfigError(f"model.dtype={method.dtype} is not supported by method=awq method.backend=gptqmodel "
                              "(GPTQModel's AWQ modules take float16 or bfloat16); choices: bfloat16, float16")
        if (method.options.duo_scaling, method.options.n_grid) != (True, 20):
            raise ConfigError("method.duo_scaling and method.n_grid are llm-compressor settings: GPTQModel's AWQ "
                              "always uses duo scaling and a 20-point grid; leave them at true and 20")

    def artifact_format(self, method) -> str:
        return FORMATS[method.name]

    def load(self, method, source_dir: Path, device: str):
        """(GPTQModel model wrapper, tokenizer) of the source checkpoint, ready to quantize."""
        import torch
        from transformers import AutoTokenizer

        gptqmodel = import_gptqmodel()
        config = gptqmodel.QuantizeConfig(**_quantize_settings(method))
        model = gptqmodel.GPTQModel.load(str(source_dir), config, dtype=getattr(torch, method.dtype),
                                         device=pick_device(device))
        return model, AutoTokenizer.from_pretrained(source_dir)

    def quantize(self, method, model, tokenizer, calibration):
        """Quantize in place from a `calibration.CalibrationSet` (its samples, as they are)."""
        samples = [{"input_ids": ids, "attention_mask": [1] * len(ids)} for ids in calibration.samples]
        model.quantize(samples, batch_size=1, calibration_data_min_length=1)
        return model

    def save(self, method, model, tokenizer, folder: Path) -> None:
        model.save(str(folder))
        tokenizer.save_pretrained(folder)

    def num_parameters(self, model) -> int:
        from gptqmodel.nn_modules.qlinear import BaseQuantLinear

        return parameters_counting_packed(model, BaseQuantLinear)


def _quantize_settings(method) -> dict:
    """GPTQModel's QuantizeConfig for the method. GPTQ: desc_act orders columns by decreasing
    activation size (the lab's actorder=static); GPTQModel's other reordering
    (act_group_aware, its default) is off, so actorder=none means no reordering at all."""
    quant = method.quant
    common = {"bits": quant.bits, "group_size": -1 if quant.group_size == PER_CHANNEL else quant.group_size,
              "sym": quant.symmetric}
    if method.name == "gptq":
        return {**common, "desc_act": method.options.actorder == "static", "act_group_aware": False,
                "damp_percent": method.options.dampening_frac}
    from gptqmodel.quantization import FORMAT, METHOD

    return {**common, "method": METHOD.AWQ, "format": FORMAT.GEMM}
