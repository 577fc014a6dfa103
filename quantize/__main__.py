"""python -m quantize method=<method> model=<name or folder> [key=value ...]"""

from __future__ import annotations

import logging
import sys

from common.cli import run_command
from common.environments import dispatch, needs_dispatch
from common.storage import ensure_writable_dir
from configs.compose import compose, compose_dict, describe_config, group_choices
from configs.errors import LabError
from quantize.methods.base import available_methods, build_method
from quantize.estimate import estimate
from quantize.pipeline import check, quantize_job

USAGE = """usage: python -m quantize method=<method> model=<name or folder> [key=value ...]

Quantize one model with one method and write an artifact folder (weights, tokenizer,
config and manifest.json) under output_dir. A second identical run reuses it.

common settings:
  quant.bits=4  quant.group_size=128 (-1 = per channel)  quant.symmetric=true
  model.dtype=bfloat16  device=auto|cpu|cuda  output_dir=lab/artifacts  overwrite=false
  calibration=<set>  calibration.num_samples=128  calibration.seq_len=512
  --cfg    print the composed config, validate it (settings, method, output_dir) and exit
  --dry-run  validate the settings and print what the run will need (parameters, peak memory
           to quantize and to evaluate, size on disk, settings that do not fit the model) from
           the model's config.json or the registry; nothing is downloaded, built or loaded

A bad setting or a damaged input file is one line (exit code 2); Ctrl-C or SIGTERM stops it
cleanly (exit code 130 / 143) and a rerun resumes.
"""
CFG_CHECKED = ("# valid: the settings, the method and its options, output_dir; checked when it runs: "
               "the model's files and the calibration data")


def main(argv: list[str]) -> int:
    # force: libraries imported above may already have configured the root logger
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S", force=True)
    if any(arg in ("-h", "--help") for arg in argv):
        print(help_text())
        return 0
    try:
        if "--cfg" in argv:
            return print_config([a for a in argv if a != "--cfg"])
        if "--dry-run" in argv:
            return dry_run([a for a in argv if a != "--dry-run"])
        job = compose("quantize", argv)
        method, _ = check(job)  # everything is validated here, before handing the run on
        if needs_dispatch(method.environment):
            return dispatch(method.environment, "quantize", argv, method.runs_in(), method.alternative())
        folder = quantize_job(job)
    except LabError as error:
        print(f"error: {error}", file=sys.stderr)
        return error.exit_code
    print(folder)
    return 0


def print_config(overrides: list[str]) -> int:
    """`--cfg`: the composed config, then whether it is valid (what could be checked without
    reading the model: the settings, the method's options and bits, output_dir)."""

    def check_settings(job) -> None:
        build_method(job.method, job.quant, job.model.dtype)
        ensure_writable_dir("output_dir", job.output_dir)

    text, error = describe_config("quantize", overrides, check_settings)
    print(text.rstrip("\n"))
    if error is not None:
        print(f"error: {error} (the config printed above is not valid)", file=sys.stderr)
        return error.exit_code
    print(CFG_CHECKED)
    return 0


def dry_run(overrides: list[str]) -> int:
    """`--dry-run`: the estimate of what this run needs (quantize.estimate); no model is read."""
    job = compose("quantize", overrides)
    method = build_method(job.method, job.quant, job.model.dtype)
    found = estimate(job, method)
    print(f"{job.model.name} {method.label()}: {found.line()}")
    print(f"  (architecture from {found.architecture_source}; memory is the model's and its work's, on a GPU; "
          "on a CPU each process also holds its libraries: the +quantize/evaluate sizes)")
    return 0


def help_text() -> str:
    lines = [USAGE, "methods:"]
    for name, cls in available_methods().items():
        summary = (cls.__doc__ or "").strip().splitlines()[0]
        bits = ", ".join(map(str, cls.supported_bits)) or "-"
        lines.append(f"  {name:<12} bits {bits:<12} {summary}")
    lines.append("\nmodels (or any local checkpoint folder: model=/path/to/folder):")
    for name in group_choices("model"):
        model = compose_dict("quantize", [f"model={name}"]).model
        source = model.hub_id or (f"tiny family ({model.tiny_size})" if model.tiny_size else "model.path=...")
        source = f"miniature of {source} (random weights, built here)" if model.miniature else source
        size = f"{model.params_b}B" if model.params_b else ""
        lines.append(f"  {name:<14} {size:<7} {model.kind:<9} {source}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(run_command(main, sys.argv[1:]))
