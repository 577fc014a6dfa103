"""The quantize recipe: validate -> resolve model -> load -> quantize -> save artifact.

Everything that can be checked without weights is checked first (settings, method vs
bits/group, device, model dims from config.json), so a bad combination fails in seconds.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path
from typing import Optional

from configs.errors import BadFile, ConfigError
from configs.schema import QuantizeJobConfig
from calibration import load_calibration
from common.environments import interpreter, needs_dispatch, running_environment
from common.memory import peak_rss_bytes
from common.storage import ensure_writable_dir, fingerprint, folder_problem, publish, staging_folder, writing
from models.loading import load_tokenizer, pick_device
from models.provenance import provenance
from models.sources import check_model_files, model_identity, resolve_model_dir
from quantize.methods.base import QuantMethod, build_method

log = logging.getLogger("quantize")


@dataclasses.dataclass
class PlannedArtifact:
    """Everything known about an artifact before any weight is loaded."""

    method: QuantMethod
    source_dir: Path
    folder: Path
    fingerprint: str
    identity: dict
    calibration: Optional[object]  # a calibration.CalibrationSet when the method needs data


def check(job: QuantizeJobConfig) -> tuple[QuantMethod, Path]:
    """Validate the job against the method and the model's config.json; load no weights.
    Runs in any lab environment (`python -m quantize` checks before handing a run on)."""
    from transformers import AutoConfig

    method = build_method(job.method, job.quant, job.model.dtype)
    if needs_dispatch(method.environment):  # a missing environment fails before the model is resolved (or built)
        interpreter(method.environment, method.runs_in(), method.alternative())
    device = pick_device(job.device)
    ensure_writable_dir("output_dir", job.output_dir)
    if method.requires_cuda and device != "cuda":
        raise ConfigError(f"method={method.name} runs only on CUDA in its library; this run's device is {device}")
    source_dir = resolve_model_dir(job.model, config_only=True)
    try:
        model_config = AutoConfig.from_pretrained(source_dir, trust_remote_code=job.model.trust_remote_code)
        method.check_model(model_config)  # a setting that does not fit the model: said before any file problem
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
        if isinstance(error, ConfigError):
            raise
        raise BadFile(source_dir / "config.json", f"the model config cannot be used ({type(error).__name__}: "
                      f"{str(error).strip().splitlines()[0] if str(error).strip() else ''})",
                      "the lab quantizes decoder-only transformers whose config transformers reads") from None
    check_model_files(job.model, source_dir)  # every file of the checkpoint, no weight loaded
    return method, source_dir


def plan(job: QuantizeJobConfig) -> PlannedArtifact:
    """Validate the job, in the environment its method runs in; load no weights."""
    method, source_dir = check(job)
    if needs_dispatch(method.environment):
        python = interpreter(method.environment, method.runs_in(), method.alternative())  # missing: says how to build it
        raise ConfigError(f"{method.runs_in()}, not in '{running_environment()}': run it with `python -m quantize ...` "
                          f"(which hands it over) or `{python} -m quantize ...`")
    identity = model_identity(job.model, source_dir)
    calibration = _calibration(job, method, source_dir)
    key = fingerprint(
        {
            "model": identity,
            "dtype": job.model.dtype,
            "method": method.describe(),
            "quant": quant_settings(job.quant) if method.supported_bits else None,
            "calibration": calibration.fingerprint if calibration else None,
            "seed": job.seed,
        }
    )
    folder = Path(job.output_dir) / job.model.name / f"{method.label()}-{key[:10]}"
    return PlannedArtifact(method, source_dir, folder.resolve(), key, identity, calibration)


def quantize_job(job: QuantizeJobConfig) -> Path:
    """Produce (or find) the artifact for `job`; returns its folder."""
    planned = plan(job)
    damaged = False
    if not job.overwrite and planned.folder.exists():
        problem = folder_problem(planned.folder)
        if problem is None:
            log.info("artifact already complete, reusing it: %s", planned.folder)
            return planned.folder
        log.warning("the artifact at %s is damaged (%s); rebuilding it", planned.folder, problem)
        damaged = True
    _seed_everything(job.seed, job.threads)
    started = time.perf_counter()
    model, tokenizer = planned.method.load(planned.source_dir, job.device)
    load_seconds = time.perf_counter() - started
    quantize_started = time.perf_counter()
    log.info("quantizing %s with %s", job.model.name, planned.method.label())
    model = planned.method.quantize(model, tokenizer, planned.calibration)
    quantize_seconds = time.perf_counter() - quantize_started
    with staging_folder(planned.folder) as staging:
        with writing("the artifact's files", planned.folder.parent, staging):
            planned.method.save(model, tokenizer, staging)
        timing = {"load_seconds": load_seconds, "quantize_seconds": quantize_seconds,
                  "total_seconds": time.perf_counter() - started}
        manifest = _manifest(job, planned, model, timing)
        folder = publish(staging, planned.folder, manifest, replace=job.overwrite or damaged)
    log.info("artifact written: %s", folder)
    return folder


def _manifest(job, planned: PlannedArtifact, model, timing: dict) -> dict:
    import torch

    peak = {"cpu_rss_bytes": peak_rss_bytes()}
    if torch.cuda.is_available():
        peak["cuda_allocated_bytes"] = torch.cuda.max_memory_allocated()
    return {
        "fingerprint": planned.fingerprint,
        "label": planned.method.label(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "model": {
            **dataclasses.asdict(job.model),
            "source_dir": str(planned.source_dir),
            "identity": planned.identity,
            "num_parameters": planned.method.num_parameters(model),
        },
        "method": planned.method.describe(),
        "quant": quant_settings(job.quant) if planned.method.supported_bits else None,
        "weight_bits": job.quant.bits if planned.method.supported_bits else _dtype_bits(job.model.dtype),
        **planned.method.manifest_fields(),
        "calibration": planned.calibration.describe() if planned.calibration else None,
        "seed": job.seed,
        "config": dataclasses.asdict(job),
        "timing": {name: round(seconds, 3) for name, seconds in timing.items()},
        "peak_memory": peak,
        **provenance(),
    }


def quant_settings(quant) -> dict:
    """quant.* as recorded and fingerprinted; quant.type (GGUF levels) only when set, so that
    the other methods' fingerprints stay as they were before it existed."""
    settings = dataclasses.asdict(quant)
    if settings.get("type") is None:
        settings.pop("type", None)
    return settings


def _calibration(job: QuantizeJobConfig, method: QuantMethod, source_dir: Path):
    """The calibration samples (tokenizer only, no weights), if the method needs them."""
    if not method.needs_calibration:
        return None
    tokenizer = load_tokenizer(source_dir, trust_remote_code=job.model.trust_remote_code)
    return load_calibration(job.calibration, tokenizer, model=job.model)


def _dtype_bits(dtype: str) -> int:
    return 32 if dtype == "float32" else 16


def _seed_everything(seed: int, threads: int | None) -> None:
    import random

    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if threads:
        torch.set_num_threads(threads)
