"""One case per class of bad input, run as a user runs the commands (a fresh process each):
one clear line naming the file and what is wrong, no traceback, nothing written, and for
derived files (the results table, a record) a warning and a run that goes on."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from evaluate import store
from tests.conftest import TINY_QUICK, run_cli
from tests.robustness.damage import damage, one_error_line

pytestmark = pytest.mark.slow

FIXTURE_STORE = Path(__file__).resolve().parents[1] / "fixtures" / "report" / "tiny_store"
QUICK_EVAL = ["eval.tasks=[tiny_arc]", "eval.perplexity_task=null", "eval.limit=2", "eval.batch_size=2",
              "speed.enabled=false", "baseline=null"]


@pytest.fixture(scope="module")
def checkpoint(tiny_family):
    return tiny_family.model_path("tiny-s")


@pytest.fixture(scope="module")
def hqq_artifact(tmp_path_factory, tiny_family):
    out = tmp_path_factory.mktemp("hqq")
    result = run_cli("quantize", "method=hqq", "model=tiny-s", "quant.bits=4", "quant.group_size=32", "quant.symmetric=false",
                     *TINY_QUICK, f"output_dir={out}")
    assert result.returncode == 0, result.stderr[-3000:]
    return Path(result.stdout.split()[-1])


def _model_with(checkpoint: Path, to: Path, name: str, edit) -> Path:
    model = Path(shutil.copytree(checkpoint, to))
    edit(model / name)
    return model


@pytest.mark.parametrize("name, edit, said", [
    ("config.json", lambda p: p.write_text(p.read_text()[:-40]), "the model config is not valid JSON"),
    ("config.json", lambda p: p.write_text(json.dumps({**json.loads(p.read_text()), "model_type": "qwen99"})),
     "the model config names model_type 'qwen99', which transformers"),
    ("model.safetensors", lambda p: damage(p, "truncate", 0.6), "the weights file is truncated"),
    ("tokenizer.json", lambda p: damage(p, "utf16"), "the tokenizer file is UTF-16LE text, not UTF-8"),
])
def test_a_bad_model_folder_is_one_line_naming_the_file_before_any_weight_loads(checkpoint, tmp_path, name, edit, said):
    model = _model_with(checkpoint, tmp_path / "model", name, edit)
    result = run_cli("quantize", "method=rtn", f"model={model}", "quant.bits=8", "quant.group_size=-1",
                     f"output_dir={tmp_path / 'out'}")
    one_error_line(result.returncode, result.stderr, f"{model / name}: {said}")
    assert result.returncode == 2 and "Loading weights" not in result.stderr
    assert not (tmp_path / "out").exists()  # no empty output folder either


def test_a_calibration_file_in_another_encoding_is_refused_naming_the_encoding(checkpoint, tmp_path):
    data = tmp_path / "calibration.txt"
    data.write_bytes("".join(f"Problème {i}: {i} + {i} = {2 * i}\n" for i in range(50)).encode("cp1252"))
    result = run_cli("quantize", "method=gptq", f"model={checkpoint}", f"calibration=file:{data}", "calibration.num_samples=8",
                     "quant.group_size=32", f"output_dir={tmp_path / 'out'}")
    line = one_error_line(result.returncode, result.stderr, str(data), "is not UTF-8 text", "Latin-1 / Windows-1252",
                          "iconv -f WINDOWS-1252 -t UTF-8")
    assert "line 1" in line and not (tmp_path / "out").exists()


@pytest.mark.parametrize("damaged, said", [
    ("missing", "the weights file qmodel.pt, listed in its manifest.json, is missing"),
    ("truncated", "the weights file qmodel.pt is 300,000 bytes, its manifest.json says"),
    ("replaced", "the weights file qmodel.pt is not a PyTorch file"),
])
def test_an_artifact_with_a_bad_weights_file_names_it(hqq_artifact, tmp_path, damaged, said):
    folder = Path(shutil.copytree(hqq_artifact, tmp_path / hqq_artifact.name))
    weights = folder / "qmodel.pt"
    if damaged == "missing":
        weights.unlink()
    elif damaged == "truncated":
        weights.write_bytes(weights.read_bytes()[:300_000])
    else:
        damage(weights, "random")
    result = run_cli("evaluate", "run", f"artifact={folder}", *QUICK_EVAL, f"results_dir={tmp_path / 'results'}")
    one_error_line(result.returncode, result.stderr, f"artifact {folder}: {said}", "python -m quantize")
    assert result.returncode == 2 and not (tmp_path / "results").exists()


def test_damage_only_loading_can_find_is_one_line_when_it_loads(hqq_artifact, tmp_path):
    """Bytes inside qmodel.pt changed, its size and zip directory intact: the checks pass, the
    load fails, and says so in one line."""
    folder = Path(shutil.copytree(hqq_artifact, tmp_path / hqq_artifact.name))
    data = bytearray((folder / "qmodel.pt").read_bytes())
    data[1000:1100] = b"\xff" * 100
    (folder / "qmodel.pt").write_bytes(bytes(data))
    result = run_cli("evaluate", "run", f"artifact={folder}", *QUICK_EVAL, f"results_dir={tmp_path / 'results'}")
    one_error_line(result.returncode, result.stderr, f"{folder}: loading it failed, a file is damaged")


def test_a_broken_results_table_is_rebuilt_and_a_broken_record_skipped_by_the_report(tmp_path):
    results = Path(shutil.copytree(FIXTURE_STORE, tmp_path / "results"))
    store.write_table(results)
    (results / "table.parquet").write_bytes(b"PAR1 not really")
    victim = next(f for f, r in store.iter_records(results) if r["task"] == "tiny_arc" and not r["artifact"]["is_baseline"])
    (victim / "samples.jsonl").write_text("{\"doc_id\": 0, \"correct\": tr")
    result = run_cli("evaluate", "report", f"results_dir={results}", f"output_dir={tmp_path / 'report'}")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    assert f"{results / 'table.parquet'} is not a valid Parquet file" in result.stderr
    assert f"skipping the damaged record {victim}" in result.stderr
    assert (tmp_path / "report" / "report.html").is_file()
    assert len(pd.read_parquet(results / "table.parquet")) == len(list(store.iter_records(results)))


@pytest.mark.parametrize("command, args, said", [
    ("quantize", ["method=rtn", "quant.bits=5"], "quant.bits=5 is not supported by method=rtn"),
    ("evaluate", ["run", "artifact=x", "eval.limit=-3"], "eval.limit=-3 must be >= 1"),
    ("evaluate", ["report", "gate.min_recovery=7"], "gate.min_recovery=7.0"),
    ("evaluate", ["sweep", "launcher.max_parallel=0"], "launcher.max_parallel=0 must be >= 1"),
])
def test_cfg_validates_what_it_prints(command, args, said):
    bad = run_cli(command, *args, "--cfg")
    one_error_line(bad.returncode, bad.stderr, said, "the config printed above is not valid")
    assert bad.returncode == 2 and bad.stdout.strip()  # the config is still shown
    good = run_cli(command, *[a for a in args if not a.startswith(("quant.bits", "eval.limit", "gate.", "launcher."))], "--cfg")
    assert good.returncode == 0, good.stderr[-2000:]
    assert good.stdout.rstrip().splitlines()[-1].startswith("# valid: ")
