"""calibration/: every source loads from local data through the real loading code; the
settings do what they say; samples are cached by fingerprint; bad input is one line."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

import calibration.loading as loading
from calibration import CalibrationSet, load_calibration
from configs.compose import compose
from configs.errors import ConfigError
from tests.calibration.fixtures import build_random_checkpoint, build_tokenizer, hub_schema_files, write_jsonl


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("QLAB_CACHE", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def tokenizer():
    return build_tokenizer()


@pytest.fixture(scope="module")
def hub_files(tmp_path_factory):
    return hub_schema_files(tmp_path_factory.mktemp("hub"))


@pytest.fixture(scope="module")
def text_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("txt") / "samples.txt"
    path.write_text("".join(f"Sample {i}: {i} plus {i} is {2 * i}.\n" for i in range(30)))
    return path


def calibration_config(*overrides: str):
    """The composed, validated `calibration` node (the model is irrelevant here: any folder)."""
    return compose("quantize", ["method=gptq", f"model={Path(__file__).parent}", *overrides]).calibration


@pytest.mark.parametrize("name", ["openmath", "pileval", "wikitext2", "c4", "ultrachat"])
def test_named_hub_set_loads_from_a_local_file_in_its_schema(name, hub_files, tokenizer):
    cfg = calibration_config(f"calibration={name}", f"calibration.data_files={hub_files[name]}",
                             "calibration.num_samples=8", "calibration.seq_len=48")
    samples = load_calibration(cfg, tokenizer)
    assert isinstance(samples, CalibrationSet) and len(samples) == 8
    assert all(0 < len(s) <= 48 for s in samples.samples)
    if cfg.pack:
        assert all(len(s) == 48 for s in samples.samples)
    text = tokenizer.decode(samples.samples[0])
    if name == "ultrachat":  # chat-formatted by default
        assert "<|im_start|>user" in text and "<|im_start|>assistant" in text
    if name == "openmath":  # problem and its worked, boxed solution
        assert "What is" in text and "\\boxed{" in text
    described = samples.describe()
    assert described["fingerprint"] == samples.fingerprint and described["source"] == name
    assert described["dataset"] == cfg.dataset and described["num_tokens"] == samples.num_tokens


def test_file_sources_txt_and_jsonl(tmp_path, text_file, tokenizer):
    from_txt = load_calibration(calibration_config(f"calibration.source=file:{text_file}", "calibration.num_samples=5"), tokenizer)
    assert len(from_txt) == 5 and tokenizer.decode(from_txt.samples[0]).startswith("Sample ")
    jsonl = write_jsonl(tmp_path / "mine.jsonl", [{"body": f"line {i}"} for i in range(6)])
    from_jsonl = load_calibration(
        calibration_config(f"calibration.source=file:{jsonl}", "calibration.text_field=body", "calibration.num_samples=6"), tokenizer
    )
    assert sorted(tokenizer.decode(s) for s in from_jsonl.samples) == sorted(f"line {i}" for i in range(6))


def test_seed_picks_the_samples_and_is_reproducible(text_file, tokenizer):
    def load(seed):
        return load_calibration(calibration_config(f"calibration.source=file:{text_file}", "calibration.num_samples=5",
                                                   f"calibration.seed={seed}"), tokenizer)

    first, again, other = load(0), load(0), load(1)
    assert first.samples == again.samples and first.fingerprint == again.fingerprint
    assert first.samples != other.samples and first.fingerprint != other.fingerprint


def test_apply_chat_template_wraps_samples(hub_files, tokenizer):
    common = ["calibration=openmath", f"calibration.data_files={hub_files['openmath']}", "calibration.num_samples=4"]
    plain = load_calibration(calibration_config(*common), tokenizer)
    chat = load_calibration(calibration_config(*common, "calibration.apply_chat_template=true"), tokenizer)
    assert "<|im_start|>" not in tokenizer.decode(plain.samples[0])
    assert tokenizer.decode(chat.samples[0]).startswith("<|im_start|>user\nWhat is")
    assert plain.fingerprint != chat.fingerprint


def test_samples_are_cached_by_fingerprint(text_file, tokenizer, monkeypatch):
    cfg = calibration_config(f"calibration.source=file:{text_file}", "calibration.num_samples=4")
    first = load_calibration(cfg, tokenizer)
    assert first.cache_file.startswith(str(loading.cache_root())) and first.fingerprint[:24] in first.cache_file

    def no_reading(*args, **kwargs):
        raise AssertionError("cached samples were read from the source again")

    monkeypatch.setattr(loading, "_records", no_reading)
    assert load_calibration(cfg, tokenizer).samples == first.samples


def test_fingerprint_depends_on_tokenizer_and_source_content(tmp_path, tokenizer):
    path = tmp_path / "data.txt"
    path.write_text("".join(f"text {i}\n" for i in range(10)))
    cfg = calibration_config(f"calibration.source=file:{path}", "calibration.num_samples=3")
    base = load_calibration(cfg, tokenizer).fingerprint
    assert load_calibration(cfg, build_tokenizer(vocab_size=350)).fingerprint != base
    path.write_text("".join(f"other text {i}\n" for i in range(10)))
    assert load_calibration(cfg, tokenizer).fingerprint != base


def test_source_by_name_alone_takes_its_description_from_the_yaml(hub_files, tokenizer):
    cfg = dataclasses.replace(
        calibration_config(), source="openmath", data_files=str(hub_files["openmath"]), num_samples=3
    )
    resolved = loading.resolve(cfg)
    assert resolved.dataset == "nvidia/OpenMathInstruct-2" and resolved.response_field == "generated_solution"
    assert len(load_calibration(cfg, tokenizer)) == 3


@pytest.mark.parametrize(
    "overrides, expected",
    [
        (["calibration.source=bogus"], ["calibration.source='bogus'", "openmath", "pileval", "file:"]),
        (["calibration.source=file:/no/such/file.txt"], ["calibration.source=file:/no/such/file.txt", "no such file"]),
        (["calibration=c4", "calibration.data_files=/no/such/c4.jsonl"], ["calibration.data_files=/no/such/c4.jsonl", "no such file"]),
    ],
)
def test_bad_source_is_one_line_at_compose(overrides, expected):
    with pytest.raises(ConfigError) as error:
        calibration_config(*overrides)
    assert "\n" not in str(error.value)
    for fragment in expected:
        assert fragment in str(error.value)


def test_too_few_samples_missing_field_and_no_chat_template(text_file, hub_files, tokenizer):
    with pytest.raises(ConfigError, match=r"has only 30 non-empty samples; calibration.num_samples=31"):
        load_calibration(calibration_config(f"calibration.source=file:{text_file}", "calibration.num_samples=31"), tokenizer)
    with pytest.raises(ConfigError, match=r"no field 'body'.*fields: text"):
        load_calibration(calibration_config("calibration=pileval", f"calibration.data_files={hub_files['pileval']}",
                                            "calibration.text_field=body"), tokenizer)
    with pytest.raises(ConfigError, match=r"has no chat template"):
        load_calibration(calibration_config("calibration=ultrachat", f"calibration.data_files={hub_files['ultrachat']}",
                                            "calibration.num_samples=4"), build_tokenizer(chat_template=False))
    with pytest.raises(ConfigError, match=r"has only \d+ tokens \(pack"):
        load_calibration(calibration_config("calibration=wikitext2", f"calibration.data_files={hub_files['wikitext2']}",
                                            "calibration.num_samples=1000"), tokenizer)


def test_hub_set_offline_says_how_to_get_it(tokenizer):
    with pytest.raises(ConfigError) as error:
        load_calibration(calibration_config("calibration=pileval", "calibration.num_samples=2"), tokenizer)
    message = str(error.value)
    assert "mit-han-lab/pile-val-backup" in message and "calibration.data_files=" in message and "\n" not in message


def test_plan_loads_calibration_before_weights_and_fingerprints_it(tmp_path, text_file, monkeypatch):
    """plan() never loads weights: every loader fails if called (the weights file stays, for
    the checks that read its header)."""
    from models import loading
    from quantize.pipeline import plan

    def no_weights(*args, **kwargs):
        raise AssertionError("plan() loaded weights")

    monkeypatch.setattr(loading, "LOADERS", {name: no_weights for name in loading.LOADERS})
    folder = build_random_checkpoint(tmp_path / "ckpt")
    common = [f"model={folder}", "method=gptq", f"calibration.source=file:{text_file}", "calibration.num_samples=4"]
    first = plan(compose("quantize", common))
    assert first.calibration is not None and len(first.calibration) == 4
    assert plan(compose("quantize", [*common, "calibration.seed=1"])).fingerprint != first.fingerprint
    with pytest.raises(ConfigError, match="num_samples=99"):
        plan(compose("quantize", [*common[:-1], "calibration.num_samples=99"]))


@pytest.mark.slow
def test_tiny_source_reads_the_tiny_family_calibration_file(tiny_family):
    from transformers import AutoTokenizer

    from tests.conftest import TINY_QUICK

    job = compose("quantize", ["method=gptq", "model=tiny-s", "calibration=tiny", "calibration.num_samples=4", *TINY_QUICK])
    tokenizer = AutoTokenizer.from_pretrained(tiny_family.model_path("tiny-s"))
    samples = load_calibration(job.calibration, tokenizer, model=job.model)
    assert len(samples) == 4 and samples.describe()["source"] == "tiny"
