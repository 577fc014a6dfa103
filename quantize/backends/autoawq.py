"""AutoAWQ 0.2.9, in `.venv-legacy`: a backend of method=awq (`method.backend=autoawq`).

AutoAWQ is the library the origin pipeline used; its authors deprecated it (llm-compressor
and GPTQModel carry AWQ on). It loads the source checkpoint
(`AutoAWQForCausalLM.from_pretrained`), searches per-channel scales and rounds
(`.quantize(tokenizer, quant_config, calib_data=...)`) and saves its GEMM checkpoint
(`.save_quantized`: packed int32 weights; `quantization_config` quant_method awq, version
gemm). The lab's calibration samples go in as token ids; AutoAWQ concatenates them and
cuts blocks of the longest sample's length. The checkpoint is the AWQ GEMM format GPTQModel
also writes, so it reloads with the `gptqmodel` loader in `.venv-gptqmodel`, where lm-eval
is; AutoAWQ's own loader needs intel_extension_for_pytorch on a CPU. What it takes: 4-bit
GEMM, asymmetric, groups (no per-channel), model.dtype float16, its grid fixed at 20 points.
"""

from __future__ import annotations

from pathlib import Path

from configs.errors import ConfigError
from configs.schema import PER_CHANNEL
from models.loading import load_tokenizer
from quantize.backends.base import Backend, parameters_counting_packed, register


@register
class AutoAWQ(Backend):
    name = "autoawq"
    library = "AutoAWQ 0.2.9 (deprecated by its authors; the origin pipeline's library)"
    environment = "legacy"
    # Measured: AutoAWQ quantizes on CPU; its GEMM checkpoints load with GPTQModel
    # (.venv-gptqmodel, where lm-eval is) and, on a CPU, with AutoAWQ's own loader only
    # through intel_extension_for_pytorch.
    load_environment = "gptqmodel"
    loader = "gptqmodel"

    def validate(self, method) -> None:
        quant = method.quant
        if quant.bits != 4:
            raise ConfigError(f"quant.bits={quant.bits} is not supported by method=awq method.backend=autoawq "
                              "(AutoAWQ's GEMM format is 4-bit); choices: 4")
        if quant.symmetric:
            raise ConfigError("quant.symmetric=true is not supported by method=awq method.backend=autoawq "
                              "(AutoAWQ's GEMM format stores zero points); choices: false")
        if quant.group_size == PER_CHANNEL:
            raise ConfigError(f"quant.group_size={PER_CHANNEL} is not supported by method=awq method.backend=autoawq "
                              "(AutoAWQ's scale search works on groups); choices: 32, 64, 128")
        if method.dtype != "float16":
            raise ConfigError(f"model.dtype={method.dtype} is not supported by method=awq method.backend=autoawq "
                              "(AutoAWQ's GEMM kernels compute in float16); choices: float16")
        if method.options.n_grid != 20:
            raise ConfigError(f"method.n_grid={method.options.n_grid} is an llm-compressor setting: AutoAWQ's scale "
                              "search always uses a 20-point grid; leave it at 20")

    def artifact_format(self, method) -> str:
        return "awq-gemm"

    def load(self, method, source_dir: Path, device: str):
        """(AutoAWQ model wrapper, tokenizer) of the source checkpoint, on CPU."""
        import torch
        from awq import AutoAWQForCausalLM

        # AutoAWQ trusts remote code by default; the lab's other loaders do not
        model = AutoAWQForCausalLM.from_pretrained(str(source_dir), torch_dtype=getattr(torch, method.dtype),
                                                   trust_remote_code=False)
        return model, load_tokenizer(source_dir)

    def quantize(self, method, model, tokenizer, calibration):
        """Quantize in place from a `calibration.CalibrationSet` (its samples, as they are)."""
        samples = [list(ids) for ids in calibration.samples]
        quant = method.quant
        quant_config = {"w_bit": quant.bits, "q_group_size": quant.group_size, "zero_point": not quant.symmetric,
                        "version": "GEMM"}
        model.quantize(tokenizer, quant_config=quant_config, calib_data=samples, duo_scaling=method.options.duo_scaling,
                       max_calib_samples=len(samples), max_calib_seq_len=max(len(s) for s in samples))
        return model

    def save(self, method, model, tokenizer, folder: Path) -> None:
        model.save_quantized(str(folder))
        tokenizer.save_pretrained(folder)

    def num_parameters(self, model) -> int:
        from awq.modules.linear.gemm import WQLinear_GEMM

        return parameters_counting_packed(model, WQLinear_GEMM)
