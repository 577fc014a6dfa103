"""llm-compressor (maintained, main environment): the default backend of RTN, GPTQ, AWQ,
SmoothQuant and AutoRound.

A method running through it gives its recipe (`method.recipe(calibration)`: llm-compressor
modifiers); the backend runs `oneshot` on the model loaded on CPU, with the calibration
samples when the method needs data, and saves a compressed-tensors checkpoint that plain
`from_pretrained` reloads.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

from configs.schema import PER_CHANNEL, QuantConfig
from quantize.backends.base import Backend, register

IGNORED_LAYERS = ["lm_head"]  # quantizing the output head costs accuracy for no memory win


@register
class LLMCompressor(Backend):
    name = "llmcompressor"
    library = "llm-compressor (maintained)"

    def artifact_format(self, method) -> str:
        return "compressed-tensors"

    def quantize(self, method, model, tokenizer, calibration):
        recipe = method.recipe(calibration)
        if not method.needs_calibration:
            return run_oneshot(model, recipe)
        with cpu_safe_intermediates_cache():
            return run_calibrated_oneshot(model, recipe, calibration)

    def save(self, method, model, tokenizer, folder: Path) -> None:
        save_compressed(model, tokenizer, folder)


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


def run_calibrated_oneshot(model, recipe, calibration):
    """`oneshot` on a `calibration.CalibrationSet`: its samples, in its (seeded) order.

    llm-compressor's own shuffling is turned off: which samples are used and in what order
    is decided by the calibration set, so the fingerprint in the manifest says it all.
    """
    return run_oneshot(
        model,
        recipe,
        calibration.to_dataset(),
        num_calibration_samples=len(calibration),
        max_seq_length=max(len(sample) for sample in calibration.samples),
        shuffle_calibration_samples=False,
    )


@contextmanager
def cpu_safe_intermediates_cache():
    """Let llm-compressor's calibrated pipelines (AWQ's) run on a machine without an accelerator.

    `AWQModifier` pins its cached activations (`IntermediatesCache.pin_memory`) to speed
    up host-to-device copies; with no accelerator, torch raises "Cannot access accelerator
    device when none is available". Pinning only serves those copies, so where there is
    no accelerator it is made a no-op for the duration of the block, and restored after.
    Nothing changes on a machine with CUDA.
    """
    import torch
    from llmcompressor.pipelines.cache import IntermediatesCache

    if torch.accelerator.is_available():
        yield
        return
    original = IntermediatesCache.pin_memory
    IntermediatesCache.pin_memory = lambda self, batch_index, input_names=None: None
    try:
        yield
    finally:
        IntermediatesCache.pin_memory = original


def save_compressed(model, tokenizer, folder: Path) -> None:
    """Save in compressed-tensors format, which plain `from_pretrained` reloads."""
    model.save_pretrained(folder, save_compressed=True)
    tokenizer.save_pretrained(folder)
