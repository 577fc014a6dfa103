"""Every reader of python -m quantize and python -m evaluate run|report, fed damaged files.

Each file the lab reads (a checkpoint's config, weights, weights index and tokenizer files;
calibration files of every format; an artifact's manifest and files; a task's data file;
records; the results table; the config YAMLs and sweep YAMLs, the user's own included) is truncated at several offsets, replaced by random bytes of its length,
emptied and re-encoded (seeded: tests/robustness/damage.py). An input file makes the command
exit 2 with one `error:` line naming the file, before any weight loads, with nothing written;
a derived or lab-written file (the results table, a record) is rebuilt or named and skipped,
and the command goes on. After each file is fixed, a rerun succeeds with the result of a run
that never saw the damage.

The commands run in this process (their `main`), so that the many cases share one import of
torch and transformers; tests/robustness/test_bad_inputs.py runs one case per class as a
user would, in a fresh process. Reruns that evaluate with lm-eval are marked slow.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from evaluate import store
from tests.calibration.fixtures import build_random_checkpoint
from tests.robustness.damage import cases, copy, damage, one_error_line, tree

FIXTURE_STORE = Path(__file__).resolve().parents[1] / "fixtures" / "report" / "tiny_store"
ARC_ROWS = [{"id": f"t{i}", "question": f"Which number is the largest{'é' * (i % 2)}?",
             "choices": {"text": [str(i), str(i + 5), str(i + 1), str(i + 2)], "label": ["A", "B", "C", "D"]},
             "answerKey": "B"} for i in range(6)]


def quantize(argv: list[str], capfd) -> tuple[int, str, str]:
    from quantize.__main__ import main

    capfd.readouterr()
    code = main(argv)
    out, err = capfd.readouterr()
    return code, out, err


def evaluate(argv: list[str], capfd) -> tuple[int, str, str]:
    from evaluate.__main__ import main

    capfd.readouterr()
    code = main(argv)
    out, err = capfd.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """A random-init checkpoint (built in seconds, no tiny family needed), its method=none
    artifact, a calibration text and a task data file."""
    root = tmp_path_factory.mktemp("fuzz")
    checkpoint = build_random_checkpoint(root / "ckpt")
    calibration = root / "calibration.txt"
    calibration.write_text("".join(f"Sample {i}: {i} plus {i} is {2 * i}, déjà vu.\n" for i in range(40)))
    calibration_jsonl = root / "calibration.jsonl"
    calibration_jsonl.write_text("".join(json.dumps({"text": f"Échantillon {i}: {i} + {i} = {2 * i}."}, ensure_ascii=False)
                                         + "\n" for i in range(40)))
    texts = [f"Échantillon {i}: {i} + {i} = {2 * i}, déjà vu." for i in range(40)]
    (root / "calibration.json").write_text(json.dumps([{"text": t} for t in texts], ensure_ascii=False, indent=1))
    pd.DataFrame({"text": texts}).to_csv(root / "calibration.csv", index=False)
    pd.DataFrame({"text": texts}).to_parquet(root / "calibration.parquet")
    arc = root / "arc.jsonl"
    arc.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in ARC_ROWS))
    return {"root": root, "checkpoint": checkpoint, "hub_checkpoint": _hub_style(checkpoint, root / "hub_ckpt"),
            "calibration.txt": calibration, "calibration.jsonl": calibration_jsonl, "arc": arc,
            **{name: root / name for name in ("calibration.json", "calibration.csv", "calibration.parquet")}}


def _hub_style(checkpoint: Path, folder: Path) -> Path:
    """The checkpoint as many Hub ones are: weights in two shards with an index, and the
    tokenizer's vocab.json, merges.txt and special_tokens_map.json beside tokenizer.json."""
    from safetensors.torch import load_file, save_file
    from tokenizers import Tokenizer

    shutil.copytree(checkpoint, folder, ignore=shutil.ignore_patterns("model.safetensors"))
    tensors = load_file(checkpoint / "model.safetensors")
    names = sorted(tensors)
    shards = {f"model-0000{i + 1}-of-00002.safetensors": part for i, part in enumerate((names[:len(names) // 2],
                                                                                       names[len(names) // 2:]))}
    for shard, part in shards.items():
        save_file({name: tensors[name] for name in part}, str(folder / shard), metadata={"format": "pt"})
    index = {"metadata": {"total_size": sum(t.numel() * t.element_size() for t in tensors.values())},
             "weight_map": {name: shard for shard, part in shards.items() for name in part}}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index, indent=2))
    Tokenizer.from_file(str(folder / "tokenizer.json")).model.save(str(folder))  # vocab.json, merges.txt
    (folder / "special_tokens_map.json").write_text(json.dumps({"eos_token": "<|im_end|>", "pad_token": "<|endoftext|>"}))
    return folder


@pytest.fixture(scope="module")
def artifact(lab):
    from quantize.__main__ import main

    assert main(["method=none", f"model={lab['checkpoint']}", f"output_dir={lab['root'] / 'artifacts'}"]) == 0
    return next((lab["root"] / "artifacts").glob("*/none-*"))


# -- a checkpoint folder (python -m quantize) ------------------------------------------------
CHECKPOINT_FILES = {  # file -> the kinds of damage that apply (a chat template truncated is still a template)
    "config.json": cases(), "model.safetensors": cases(("truncate", "random", "empty")),
    "tokenizer.json": cases(), "tokenizer_config.json": cases(), "generation_config.json": cases(),
    "chat_template.jinja": cases(("random", "empty", "utf16")),
    # in the Hub-style checkpoint (`_hub_style`); a truncated merges.txt is a shorter list of merges
    "model.safetensors.index.json": cases(), "vocab.json": cases(), "merges.txt": cases(("random", "empty", "utf16")),
    "special_tokens_map.json": cases(),
}
HUB_STYLE = ("model.safetensors.index.json", "vocab.json", "merges.txt", "special_tokens_map.json")


@pytest.mark.parametrize("name", CHECKPOINT_FILES)
def test_a_damaged_checkpoint_file_is_one_line_and_a_fixed_one_quantizes(lab, tmp_path, capfd, name):
    source = lab["hub_checkpoint" if name in HUB_STYLE else "checkpoint"]
    model = copy(source, tmp_path / "ckpt")  # the path is part of a local model's fingerprint
    code, out, _ = quantize(["method=none", f"model={model}", f"output_dir={tmp_path / 'reference'}"], capfd)
    assert code == 0
    shutil.rmtree(model)
    for kind, fraction in CHECKPOINT_FILES[name]:
        model = copy(source, tmp_path / "ckpt")
        damage(model / name, kind, fraction)
        output = tmp_path / "out"
        code, _, err = quantize(["method=none", f"model={model}", f"output_dir={output}"], capfd)
        line = one_error_line(code, err, str(model / name) if kind != "truncate" or name != "model.safetensors" else name)
        assert code == 2 and not output.exists(), (kind, fraction)
        assert not ("convert it" in line and "re-download" in line), line  # one thing to do
        shutil.rmtree(model)
    model = copy(source, tmp_path / "ckpt")  # fixed: the same files again
    code, fixed, err = quantize(["method=none", f"model={model}", f"output_dir={tmp_path / 'out'}"], capfd)
    assert code == 0, err[-2000:]
    reference, rerun = Path(out.split()[-1]), Path(fixed.split()[-1])
    assert rerun.name == reference.name  # the same fingerprint as never damaged, and the same weights
    assert (rerun / "model.safetensors").read_bytes() == (reference / "model.safetensors").read_bytes()


@pytest.mark.parametrize("weight_map, said", [
    (["model-00001-of-00002.safetensors"], "the weights index has no weight_map"),
    (None, "the weights index has no weight_map"),
    ({"lm_head.weight": "model-00003-of-00003.safetensors"},
     "the weights index lists model-00003-of-00003.safetensors, which is not in the folder"),
])
def test_a_weights_index_that_maps_no_weights_here_is_one_line(lab, tmp_path, capfd, weight_map, said):
    model = copy(lab["hub_checkpoint"], tmp_path / "ckpt")
    (model / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    code, _, err = quantize(["method=none", f"model={model}", f"output_dir={tmp_path / 'out'}"], capfd)
    one_error_line(code, err, f"{model / 'model.safetensors.index.json'}: {said}")
    assert code == 2 and not (tmp_path / "out").exists()


# -- calibration files ---------------------------------------------------------------------------
CALIBRATION_KINDS = {  # a truncated .txt or .csv is still one (shorter): only its last sample is cut
    "calibration.txt": ("random", "empty", "utf16", "latin1"), "calibration.jsonl": ("truncate", "random", "empty", "utf16", "latin1"),
    "calibration.json": ("truncate", "random", "empty", "utf16", "latin1"), "calibration.csv": ("random", "empty", "utf16", "latin1"),
    "calibration.parquet": ("truncate", "random", "empty"),
}
CALIBRATION_CASES = [(name, k, f) for name, kinds in CALIBRATION_KINDS.items() for k, f in cases(kinds)]


@pytest.mark.parametrize("name, kind, fraction", CALIBRATION_CASES)
def test_a_damaged_calibration_file_is_one_line_before_any_weight_loads(lab, tmp_path, capfd, monkeypatch, name, kind, fraction):
    from models import loading

    monkeypatch.setenv("QLAB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(loading, "LOADERS", {n: _no_weights for n in loading.LOADERS})
    data = shutil.copy(lab[name], tmp_path / name)
    damage(Path(data), kind, fraction)
    code, _, err = quantize(["method=gptq", f"model={lab['checkpoint']}", f"calibration=file:{data}",
                             "calibration.num_samples=8", "quant.group_size=64", f"output_dir={tmp_path / 'out'}"], capfd)
    line = one_error_line(code, err, f"{data}: ")
    if kind in ("utf16", "latin1", "empty"):
        assert {"utf16": "UTF-16", "latin1": "Latin-1", "empty": ": is empty"}[kind] in line
        assert kind == "empty" or "iconv" in line
    assert code == 2 and not (tmp_path / "out").exists()


def _no_weights(*args, **kwargs):
    raise AssertionError("weights were loaded before the calibration file was checked")


@pytest.mark.slow
@pytest.mark.parametrize("name", CALIBRATION_KINDS)
def test_a_fixed_calibration_file_quantizes(lab, tmp_path, capfd, monkeypatch, name):
    monkeypatch.setenv("QLAB_CACHE", str(tmp_path / "cache"))
    data = shutil.copy(lab[name], tmp_path / name)
    damage(Path(data), "random")
    settings = ["method=gptq", f"model={lab['checkpoint']}", f"calibration=file:{data}", "calibration.num_samples=8",
                "quant.group_size=64", f"output_dir={tmp_path / 'out'}"]
    assert quantize(settings, capfd)[0] == 2
    shutil.copy(lab[name], data)
    code, out, err = quantize(settings, capfd)
    assert code == 0, err[-2000:]
    assert Path(out.split()[-1]).name.startswith("gptq-w4a16-g64-")


# -- an artifact folder and a task data file (python -m evaluate run) ----------------------
ARTIFACT_FILES = {
    "manifest.json": cases(), "model.safetensors": cases(("truncate", "random", "empty")), "config.json": cases(),
    "tokenizer.json": cases(), "tokenizer_config.json": cases(), "generation_config.json": cases(),
}
EVAL = ["eval.tasks=[tiny_arc]", "eval.perplexity_task=null", "eval.limit=4", "eval.batch_size=4", "eval.max_gen_toks=4",
        "speed.enabled=false", "baseline=null"]


def _eval_args(artifact: Path, data: Path, results: Path) -> list[str]:
    return ["run", f"artifact={artifact}", *EVAL, f"eval.data_files.tiny_arc={data}", f"results_dir={results}"]


@pytest.mark.parametrize("name", ARTIFACT_FILES)
def test_a_damaged_artifact_file_is_one_line_naming_it_before_the_model_loads(lab, artifact, tmp_path, capfd, monkeypatch, name):
    from models import loading

    monkeypatch.setattr(loading, "LOADERS", {n: _no_weights for n in loading.LOADERS})
    for kind, fraction in ARTIFACT_FILES[name]:
        folder = copy(artifact, tmp_path / artifact.name)
        damage(folder / name, kind, fraction)
        results = tmp_path / "results"
        code, _, err = evaluate(_eval_args(folder, lab["arc"], results), capfd)
        line = one_error_line(code, err, str(folder), name if name != "manifest.json" else "manifest.json")
        assert code == 2 and not results.exists(), (kind, fraction, line)
        shutil.rmtree(folder)


def test_an_artifact_without_its_weights_file_says_the_weights_file_is_missing(artifact, lab, tmp_path, capfd):
    folder = copy(artifact, tmp_path / artifact.name)
    (folder / "model.safetensors").unlink()
    code, _, err = evaluate(_eval_args(folder, lab["arc"], tmp_path / "results"), capfd)
    one_error_line(code, err, "the weights file model.safetensors, listed in its manifest.json, is missing")


@pytest.mark.parametrize("kind, fraction", cases(("truncate", "random", "empty", "utf16", "latin1")))
def test_a_damaged_task_data_file_is_one_line_before_the_model_loads(lab, artifact, tmp_path, capfd, monkeypatch, kind, fraction):
    from models import loading

    monkeypatch.setattr(loading, "LOADERS", {n: _no_weights for n in loading.LOADERS})
    data = Path(shutil.copy(lab["arc"], tmp_path / "arc.jsonl"))
    damage(data, kind, fraction)
    code, _, err = evaluate(_eval_args(artifact, data, tmp_path / "results"), capfd)
    one_error_line(code, err, str(data))
    assert code == 2 and not (tmp_path / "results").exists()


@pytest.mark.slow
def test_fixed_artifact_and_data_files_evaluate_like_never_damaged_ones(lab, artifact, tmp_path, capfd):
    """Damaged, refused, fixed, evaluated: the records equal those of an undamaged run; then
    a damaged record is recomputed (named in a warning) to the same metrics."""
    reference = tmp_path / "reference"
    code, _, err = evaluate(_eval_args(artifact, lab["arc"], reference), capfd)
    assert code == 0, err[-3000:]
    folder = copy(artifact, tmp_path / artifact.name)
    data = Path(shutil.copy(lab["arc"], tmp_path / "arc.jsonl"))
    damage(folder / "model.safetensors", "truncate", 0.5)
    damage(data, "latin1")
    results = tmp_path / "results"
    assert evaluate(_eval_args(folder, data, results), capfd)[0] == 2
    shutil.copy(artifact / "model.safetensors", folder / "model.safetensors")
    assert evaluate(_eval_args(folder, data, results), capfd)[0] == 2  # the data file is still damaged
    shutil.copy(lab["arc"], data)
    code, out, err = evaluate(_eval_args(folder, data, results), capfd)
    assert code == 0, err[-3000:]
    assert _metrics(results) == _metrics(reference)

    record = Path(out.split()[-1])
    damage(record / "samples.jsonl", "truncate", 0.5)
    code, again, err = evaluate(_eval_args(folder, data, results), capfd)
    assert code == 0 and again == out, err[-3000:]
    assert f"the record {record} is damaged" in err and "recomputing it" in err
    assert _metrics(results) == _metrics(reference)


def _metrics(results: Path) -> list[dict]:
    return [{k: v for k, v in r["metrics"].items()} for _, r in store.iter_records(results)]


# -- records and the results table (derived: named, skipped, rebuilt) ----------------------------
@pytest.fixture
def results(tmp_path):
    folder = tmp_path / "results"
    shutil.copytree(FIXTURE_STORE, folder)
    store.write_table(folder)
    return folder


TABLE_CASES = [(name, k, f) for name in ("table.parquet", "table.csv") for k, f in cases(("truncate", "random", "empty"))]


@pytest.mark.parametrize("name, kind, fraction", TABLE_CASES)
def test_a_damaged_results_table_is_rebuilt_from_the_records_with_a_warning(results, caplog, name, kind, fraction):
    expected = pd.read_parquet(results / "table.parquet")
    damage(results / name, kind, fraction)
    frame = store.ensure_table(results)
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and str(results / name) in warnings[0] and "rebuilding the results table" in warnings[0]
    assert len(frame) == len(expected)
    pd.testing.assert_frame_equal(pd.read_parquet(results / "table.parquet"), expected)
    assert len(pd.read_csv(results / "table.csv")) == len(expected)
    caplog.clear()
    store.ensure_table(results)
    assert not [r for r in caplog.records if r.levelname == "WARNING"]  # rebuilt: nothing to say the second time


@pytest.mark.parametrize("kind, fraction", cases(("truncate", "random", "empty")))
def test_a_damaged_parquet_table_without_its_csv_is_named_in_the_rebuild_warning(results, caplog, kind, fraction):
    expected = pd.read_parquet(results / "table.parquet")
    damage(results / "table.parquet", kind, fraction)
    (results / "table.csv").unlink()
    store.ensure_table(results)
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and warnings[0].startswith(f"{results / 'table.parquet'} is "), warnings
    assert f"and {results / 'table.csv'} is missing; rebuilding the results table" in warnings[0]
    if kind == "empty":
        assert warnings[0].startswith(f"{results / 'table.parquet'} is empty and ")
    pd.testing.assert_frame_equal(pd.read_parquet(results / "table.parquet"), expected)
    assert len(pd.read_csv(results / "table.csv")) == len(expected)


RECORD_CASES = [(name, k, f) for name in ("manifest.json", "samples.jsonl") for k, f in cases(("truncate", "random", "empty"))]


@pytest.mark.parametrize("name, kind, fraction", RECORD_CASES)
def test_a_damaged_record_is_named_and_skipped_and_the_rest_is_read(results, caplog, name, kind, fraction):
    before = {str(f): r for f, r in store.iter_records(results)}
    victim = next(f for f, r in store.iter_records(results) if r["task"] == "tiny_arc")
    damage(victim / name, kind, fraction)
    caplog.clear()
    after = {str(f): r for f, r in store.iter_records(results)}
    assert set(before) - set(after) == {str(victim)} and all(after[f] == before[f] for f in after)
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and f"skipping the damaged record {victim}" in warnings[0] and name in warnings[0]


def test_the_report_command_rebuilds_an_emptied_table_and_skips_a_damaged_record(results, tmp_path, capfd):
    (results / "table.parquet").write_bytes(b"")
    victim = next(f for f, r in store.iter_records(results) if r["task"] == "tiny_squad" and not r["artifact"]["is_baseline"])
    damage(victim / "manifest.json", "truncate", 0.5)
    code, out, err = evaluate(["report", f"results_dir={results}", f"output_dir={tmp_path / 'report'}"], capfd)
    assert code == 0, err[-3000:]
    assert "Traceback" not in err
    assert f"{results / 'table.parquet'} is empty; rebuilding the results table" in err
    assert f"skipping the damaged record {victim}" in err
    assert (tmp_path / "report" / "report.html").is_file()
    assert len(pd.read_parquet(results / "table.parquet")) == len(list(store.iter_records(results)))


# -- the config YAMLs ----------------------------------------------------------------------------
@pytest.mark.parametrize("kind, fraction", cases(("truncate", "random", "empty", "utf16")))
def test_a_damaged_config_yaml_is_one_line_naming_it(lab, tmp_path, capfd, monkeypatch, kind, fraction):
    from configs import compose

    config_dir = Path(shutil.copytree(compose.CONFIG_DIR, tmp_path / "hydra_conf"))
    monkeypatch.setattr(compose, "CONFIG_DIR", config_dir)
    original = (config_dir / "method" / "rtn.yaml").read_bytes()
    damage(config_dir / "method" / "rtn.yaml", kind, fraction)
    settings = ["method=rtn", "quant.bits=8", f"model={lab['checkpoint']}", f"output_dir={tmp_path / 'out'}"]
    code, _, err = quantize(settings, capfd)
    if code == 0:  # a truncation can leave a shorter file that still says everything (a comment cut)
        pytest.fail(f"a {kind} {config_dir / 'method' / 'rtn.yaml'} was accepted: {original[:200]!r}")
    one_error_line(code, err)
    assert code == 2 and not (tmp_path / "out").exists()
    (config_dir / "method" / "rtn.yaml").write_bytes(original)
    code, out, err = quantize([*settings, "--cfg"], capfd)
    assert code == 0 and "name: rtn" in out, err[-2000:]


# -- sweep YAMLs (python -m evaluate sweep --dry-run) ------------------------------------------
MY_SWEEP = """# My own sweep: tiny-s, RTN and HQQ at 8 and 4 bits (déjà vu: a comment in UTF-8)
name: mine
models: [tiny-s]
eval: tiny
eval_overrides: [eval.limit=10]
methods:
  - {method: rtn, bits: [8, 4]}
  - {method: hqq, bits: [4]}
"""
SWEEP_YAMLS = [*sorted(p.stem for p in (Path(__file__).resolve().parents[2] / "hydra_conf" / "sweep").glob("*.yaml")), "mine"]
ONE_CELL = ["sweep.models=[tiny-s]", "sweep.methods=[{method: rtn, bits: [8]}]"]


@pytest.mark.parametrize("name", SWEEP_YAMLS)
def test_a_damaged_sweep_yaml_is_one_line_naming_it_and_a_restored_one_plans(tmp_path, capfd, monkeypatch, name):
    from configs import compose

    config_dir = Path(shutil.copytree(compose.CONFIG_DIR, tmp_path / "hydra_conf"))
    monkeypatch.setattr(compose, "CONFIG_DIR", config_dir)
    path = config_dir / "sweep" / f"{name}.yaml"
    if name == "mine":  # a user's own sweep, next to the lab's
        path.write_text(MY_SWEEP)
    original = path.read_bytes()
    folders = [f"{setting}={tmp_path / setting}" for setting in ("output_dir", "results_dir", "sweeps_dir")]
    for kind, fraction in cases(("truncate", "random", "empty", "utf16", "latin1")):
        damage(path, kind, fraction)
        if path.read_bytes() != original:  # Latin-1 of an ASCII file is the same file
            code, _, err = evaluate(["sweep", f"sweep={name}", "--dry-run", *folders], capfd)
            line = one_error_line(code, err, str(path))
            assert code == 2 and (kind != "utf16" or "UTF-16" in line), (kind, fraction)
        path.write_bytes(original)
    if name == "mine":  # cut at a line end, before its methods: still YAML, but the file is what lacks them
        path.write_bytes(original[:original.index(b"methods:")])
        code, _, err = evaluate(["sweep", f"sweep={name}", "--dry-run", *folders], capfd)
        one_error_line(code, err, f"{path}: sets no methods, so sweep.methods is empty")
        path.write_bytes(original)
    assert not [setting for setting in folders if Path(setting.split("=", 1)[1]).exists()]
    # Restored, it plans; the lab's sweeps planned for one cell (gguf's cells need .venv-gguf,
    # size_ladder's are many), the file still read and composed.
    code, out, err = evaluate(["sweep", f"sweep={name}", "--dry-run", *folders, *([] if name == "mine" else ONE_CELL)], capfd)
    assert code == 0 and "Traceback" not in err, err[-2000:]
    assert out.count("  pending ") == (4 if name == "mine" else 2)  # with the model's baseline
