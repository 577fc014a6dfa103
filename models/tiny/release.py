"""The shipped tiny family: one build of the default settings, kept in the repository so
that no machine has to train it (`ensure_built` uses it when the cache holds no build).

Layout of `models/tiny/release/` (a build's, see `build.py`, plus):
    tiny-*/model.safetensors       weights in bfloat16: half of float32's size (the family
                                   is 36 MB in float32, over the 30 MB budget), and the
                                   held-out scores of the bfloat16 weights match float32's
                                   (measured on tiny-l: within 0.5 points, format 100%)
    data/answers-<size>.jsonl      the greedy answer to every held-out prompt, generated
                                   from the stored weights (loaded in float32, one thread,
                                   batches of ANSWER_BATCH): what `verify` re-generates
    manifest.json                  the build's manifest (every setting, the generator and
                                   layout versions, the CPU flags), the held-out scores of
                                   the stored weights, and the sha256 and size of every file

    python -m models.tiny release <build folder>    # make it from a build
    python -m models.tiny verify [folder]           # check it (or a build)
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path

from common.storage import file_sha256
from configs.errors import BadFile, LabError
from models.tiny.family import (LAYOUT_VERSION, MANIFEST, RELEASE_MANIFEST, TinyFamily,
                                write_jsonl)
from models.tiny.generator import GENERATOR_VERSION, TASKS
from models.tiny.settings import PROFILES, SIZES

log = logging.getLogger(__name__)

RELEASE_DIR = Path(__file__).resolve().parent / "release"
STORED_DTYPE = "bfloat16"
ANSWER_BATCH = 64  # generate_greedy's batch: the sample `verify` re-generates is whole batches
VERIFY_SAMPLE = 64  # held-out prompts per task and size that `verify` re-generates
RESTORE = ("restore the release (`git checkout -- models/tiny/release`) or train the family "
           "(`python -m models.tiny build`)")


class ReleaseMismatch(LabError):
    """Re-generated held-out answers differ from the recorded ones."""


def make_release(build: TinyFamily, out: Path = RELEASE_DIR) -> Path:
    """Write the release of `build` to `out` (the repository's release: only of a build of
    the default settings), replacing what is there only once the new one is complete."""
    import torch  # imported when used: models.tiny (and this module) stay light to import
    from transformers import AutoModelForCausalLM

    from models.tiny.evaluation import score_answers  # torch: imported when used (see above)

    if out == RELEASE_DIR and (differences := stale_settings(build.manifest)):
        raise LabError(f"{build.root}: not a build of the default settings (differs in "
                       f"{', '.join(differences)}); the release is made of `python -m models.tiny build`")
    staging = out.with_name(f".{out.name}.staging")
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(build.root, staging, ignore=shutil.ignore_patterns("model.safetensors"))

    held_out = {}
    for size in build.sizes:
        model = AutoModelForCausalLM.from_pretrained(build.model_path(size), dtype=torch.float32)
        model.to(getattr(torch, STORED_DTYPE)).save_pretrained(staging / size)
        family = TinyFamily(staging)
        answers = record_answers(family, size)
        write_jsonl(family.answers_path(size), answers)
        held_out[size] = {task: {k: v for k, v in scores.items() if k != "example"}
                          for task, scores in score_answers(_held_out_docs(family), answers).items()}
        log.info("release: %s stored in %s; held-out %s", size, STORED_DTYPE, held_out[size])
    os.remove(staging / MANIFEST)  # the release's manifest holds it
    manifest = {**build.manifest, "stored_dtype": STORED_DTYPE, "held_out_stored": held_out,
                "answer_batch": ANSWER_BATCH, "files": file_table(staging)}
    (staging / RELEASE_MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    if out.exists():
        shutil.rmtree(out)
    os.rename(staging, out)
    return out


def load_release(root: Path = RELEASE_DIR) -> TinyFamily | None:
    """The release, if there is one and it was made with the code's current default
    settings and versions; its files checked against the manifest (a damaged one: a
    BadFile naming it)."""
    if not (root / RELEASE_MANIFEST).is_file():
        return None
    manifest = json.loads((root / RELEASE_MANIFEST).read_text())
    differences = stale_settings(manifest)
    if differences:
        log.warning("tiny family: the release in %s was made with other settings (%s); "
                    "training instead", root, ", ".join(differences))
        return None
    check_files(root, manifest)
    return TinyFamily(root)


def stale_settings(manifest: dict) -> list[str]:
    """What differs between the release's manifest and the code's defaults (empty: none).
    The build's matrix-multiply dtype (bfloat16 or float32, by CPU) is not compared: the
    release serves machines of either kind."""
    current = {"generator_version": GENERATOR_VERSION, "layout_version": LAYOUT_VERSION,
               "profile": "full", "seed": 0, "sizes": list(SIZES),
               "settings": _any_matmul_dtype(PROFILES["full"].settings_for(SIZES))}
    recorded = {key: manifest.get(key) for key in current}
    recorded["settings"] = _any_matmul_dtype(manifest.get("settings") or {})
    return [key for key in current if recorded[key] != current[key]]


def _any_matmul_dtype(settings: dict) -> dict:
    train = {k: v for k, v in settings.get("train", {}).items() if k != "matmul_dtype"}
    return {**settings, "train": train}


def check_files(root: Path, manifest: dict, advice: str = RESTORE) -> None:
    """Every file the manifest lists has its recorded size and sha256 (BadFile if not)."""
    for name, expected in manifest["files"].items():
        path = root / name
        if not path.is_file():
            raise BadFile(path, "is missing from the tiny-family release", advice)
        size = path.stat().st_size
        if size != expected["bytes"]:
            raise BadFile(path, f"has {size} bytes, the release manifest says {expected['bytes']} "
                                "(truncated or replaced)", advice)
        if file_sha256(path) != expected["sha256"]:
            raise BadFile(path, "differs from the release manifest's sha256 (damaged or edited)",
                          advice)


def verify(root: Path, sample: int = VERIFY_SAMPLE) -> dict[str, int]:
    """Check a release (or a build with recorded answers): checksums, then the first
    `sample` held-out prompts per task and size re-generated equal to the recorded
    answers. Returns the number of answers compared per size; raises on any difference."""
    if sample % ANSWER_BATCH:
        raise ValueError(f"sample must be a multiple of {ANSWER_BATCH} (one generation batch)")
    manifest_file = root / RELEASE_MANIFEST if (root / RELEASE_MANIFEST).is_file() else root / MANIFEST
    if not manifest_file.is_file():
        raise BadFile(root, f"has no {RELEASE_MANIFEST} or {MANIFEST}: not a tiny-family build or release")
    manifest = json.loads(manifest_file.read_text())
    if "files" in manifest:
        check_files(root, manifest, RESTORE if manifest_file.name == RELEASE_MANIFEST else
                    "rebuild it: `python -m models.tiny build --force`")
    family = TinyFamily(root)
    compared = {}
    for size in family.sizes:
        answers_file = family.answers_path(size)
        if not answers_file.is_file():
            raise BadFile(answers_file, "is missing: this build recorded no held-out answers")
        recorded = [json.loads(line) for line in answers_file.read_text().splitlines()]
        again = record_answers(family, size, limit=sample)
        expected = [r for r in recorded if r["index"] < sample]
        for old, new in zip(expected, again):
            if old != new:
                raise ReleaseMismatch(
                    f"{answers_file}: {size} now answers {old['task']} prompt {old['index']} "
                    f"with {new['generation']!r}, recorded {old['generation']!r}")
        compared[size] = len(again)
    return compared


def record_answers(family: TinyFamily, size: str, limit: int | None = None) -> list[dict]:
    """`held_out_answers` of `size` (loaded in float32, one thread): to the first `limit`
    held-out prompts of every task (all by default)."""
    import torch  # imported when used: models.tiny (and this module) stay light to import
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from models.tiny.evaluation import held_out_answers  # torch: imported when used (see above)

    torch.set_num_threads(1)
    folder = family.model_path(size)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    return held_out_answers(model, tokenizer, _held_out_docs(family),
                            family.manifest["settings"]["train"]["max_new_tokens"], limit)


def _held_out_docs(family: TinyFamily) -> dict[str, list[dict]]:
    return {task: [json.loads(line) for line in family.data_path(task).read_text().splitlines()]
            for task in TASKS}


def file_table(root: Path) -> dict[str, dict]:
    """{relative path: {"bytes", "sha256"}} of every file under `root`."""
    return {str(path.relative_to(root)): {"bytes": path.stat().st_size, "sha256": file_sha256(path)}
            for path in sorted(root.rglob("*")) if path.is_file()}

