"""Shared glue for the methods that run through llm-compressor's `oneshot`."""

from __future__ import annotations

from pathlib import Path

from configs.schema import PER_CHANNEL, QuantConfig

IGNORED_LAYERS = ["lm_head"]  # quantizing the output head costs accuracy for no memory win


def weight_scheme(quant: QuantConfig, targets=("Linear",)):
    """A compressed-tensors scheme for weight-only integer quantization."""
    from compressed_tensors.quantization import QuantizationArgs, QuantizationScheme

    if quant.group_size == PER_CHANNEL:
        strategy = {"strategy": "channel"}
    else:
        strategy = {"strategy": "group", "group_size": quant.group_size}
    weights = QuantizationArgs(num_bits=quant.bits, type="int", symmetric=quant.symmetric, **strategy)
    return QuantizationScheme(targets=list(targets), weights=weights)


def run_oneshot(model, recipe, calibration_dataset=None, **kwargs):
    """llm-compressor's `oneshot`, with the model modified in place and returned."""
    from llmcompressor import oneshot

    oneshot(model=model, recipe=recipe, dataset=calibration_dataset, **kwargs)
    return model


def save_compressed(model, tokenizer, folder: Path) -> None:
    """Save in compressed-tensors format, which plain `from_pretrained` reloads."""
    model.save_pretrained(folder, save_compressed=True)
    tokenizer.save_pretrained(folder)
