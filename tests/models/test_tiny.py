"""The tiny family: data generator, prompt rendering vs lm-eval, tokenizer, build/cache.

The `slow` tests build the `quick` profile into temporary caches (about a minute each).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from configs.errors import BadFile
from configs.schema import TINY_PROFILES, TINY_SIZES
from models.tiny import PROFILES, SIZES, TASKS, ensure_built
from models.tiny import settings as settings_module
from models.tiny.build import MANIFEST, build_name, cache_root, find_build
from models.tiny.generator import (LAB_TASK_NAMES, DataSettings, answer_text, assistant_reply,
                                   generate_splits)
from models.tiny.settings import SizeConfig, TrainSettings, native_bfloat16
from models.tiny.training import PlateauSchedule, matmul_precision
from tasks.prompts import TASKS_DIR, render_prompt, render_target

REPO = Path(__file__).resolve().parents[2]
SMALL = DataSettings(train_per_task=60, dev_per_task=10, eval_per_task=20)


# ---- generator --------------------------------------------------------------------------

def write_task_over_file(folder: Path, name: str, task: str, data_file: Path) -> None:
    """An lm-eval task `name`: the lab's YAML for `task`, reading `data_file` instead."""
    (folder / f"{name}.yaml").write_text(textwrap.dedent(f"""\
        include: {TASKS_DIR / LAB_TASK_NAMES[task]}.yaml
        task: {name}
        dataset_path: json
        dataset_name: null
        dataset_kwargs:
          data_files:
            test: {data_file}
        test_split: test
        """))

def test_the_config_layer_names_exactly_the_sizes_and_profiles_built_here():
    """configs/ validates model.tiny_size and model.tiny_profile without importing this package."""
    assert tuple(PROFILES) == TINY_PROFILES
    assert SIZES == TINY_SIZES
    for profile in PROFILES.values():
        assert tuple(profile.sizes) == TINY_SIZES


def test_generator_is_deterministic_for_a_seed_and_varies_with_it():
    first, again, other = (generate_splits(SMALL, seed) for seed in (0, 0, 1))
    assert first == again
    assert first["train"]["openmath"] != other["train"]["openmath"]
    assert {split: {t: len(d) for t, d in tasks.items()} for split, tasks in first.items()} == {
        "eval": dict.fromkeys(TASKS, 20), "dev": dict.fromkeys(TASKS, 10),
        "train": dict.fromkeys(TASKS, 60)}


def test_docs_follow_the_hub_datasets_schemas():
    docs = generate_splits(SMALL, 0)["eval"]
    for doc in docs["openmath"]:  # nvidia/OpenMathInstruct-2
        assert {"problem", "expected_answer", "generated_solution"} <= doc.keys()
        assert doc["generated_solution"].endswith("\\boxed{" + doc["expected_answer"] + "}")
        assert int(doc["expected_answer"]) >= 0
    for doc in docs["arc"]:  # allenai/ai2_arc
        assert set(doc) == {"id", "question", "choices", "answerKey"}
        assert doc["choices"]["label"] == ["A", "B", "C", "D"]
        assert len(set(doc["choices"]["text"])) == 4
        assert doc["answerKey"] in doc["choices"]["label"]
    for doc in docs["squad"]:  # rajpurkar/squad
        assert set(doc) == {"id", "title", "context", "question", "answers"}
        (text,), (start,) = doc["answers"]["text"], doc["answers"]["answer_start"]
        assert doc["context"][start:start + len(text)] == text
    ids = [doc["id"] for task in ("arc", "squad") for doc in docs[task]]
    assert len(ids) == len(set(ids))


def test_arc_answers_are_right():
    for doc in generate_splits(SMALL, 3)["train"]["arc"]:
        options = doc["choices"]["text"]
        chosen = options[doc["choices"]["label"].index(doc["answerKey"])]
        if doc["question"] == "Which number is the largest?":
            assert int(chosen) == max(map(int, options))
        elif doc["question"] == "Which number is the smallest?":
            assert int(chosen) == min(map(int, options))


def test_splits_never_share_a_prompt():
    splits = generate_splits(SMALL, 0)
    for task in TASKS:
        prompts = {split: {render_prompt(LAB_TASK_NAMES[task], d) for d in splits[split][task]}
                   for split in splits}
        assert not prompts["eval"] & prompts["train"]
        assert not prompts["eval"] & prompts["dev"]
        assert not prompts["dev"] & prompts["train"]


def test_training_reply_ends_with_the_boxed_reference_answer():
    docs = generate_splits(SMALL, 0)["eval"]
    for task in TASKS:
        for doc in docs[task]:
            assert assistant_reply(task, doc).endswith("\\boxed{" + answer_text(task, doc) + "}")
            assert render_target(LAB_TASK_NAMES[task], doc) == answer_text(task, doc)


# ---- prompts vs lm-eval -----------------------------------------------------------------

def test_render_prompt_is_exactly_what_lm_eval_builds(tmp_path, monkeypatch):
    """The model is trained on render_prompt and evaluated on lm-eval's own rendering of
    the task YAMLs: both with apply_chat_template (the user message) and without."""
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf_datasets"))
    from lm_eval.tasks import TaskManager

    docs = generate_splits(DataSettings(train_per_task=0, dev_per_task=0, eval_per_task=8), 5)
    for task in TASKS:
        data = tmp_path / f"{task}.jsonl"
        data.write_text("".join(json.dumps(doc) + "\n" for doc in docs["eval"][task]))
        write_task_over_file(tmp_path, f"local_{task}", task, data)
    loaded = TaskManager(include_path=str(tmp_path)).load([f"local_{t}" for t in TASKS])
    tasks = {name.removeprefix("local_"): task for name, task in _leaf_tasks(loaded).items()}
    assert set(tasks) == set(TASKS)
    for name, task in tasks.items():
        lab_task = LAB_TASK_NAMES[name]
        chats = []
        task.build_all_requests(apply_chat_template=True, chat_template=lambda messages, **kw:
                                chats.append((messages, kw)) or "unused")
        lm_eval_docs = list(task.test_docs())
        assert len(chats) == len(lm_eval_docs) == 8
        for (messages, kwargs), doc in zip(chats, lm_eval_docs):
            assert messages == [{"role": "user", "content": render_prompt(lab_task, doc)}]
            assert kwargs == {"add_generation_prompt": True}
            assert task.doc_to_target(doc) == render_target(lab_task, doc)
        task.build_all_requests(apply_chat_template=False)
        contexts = [instance.args[0] for instance in task.instances]
        assert contexts == [render_prompt(lab_task, doc) for doc in lm_eval_docs]
        if name == "arc":  # the template's trailing newline survives in both renderings
            assert all(context.endswith("D. " + doc["choices"]["text"][3] + "\n")
                       for context, doc in zip(contexts, lm_eval_docs))


def _leaf_tasks(loaded) -> dict:
    tasks = loaded["tasks"] if isinstance(loaded, dict) and "tasks" in loaded else loaded
    flat = {}
    for key, value in tasks.items():
        if isinstance(value, dict):
            flat.update(_leaf_tasks(value))
        else:
            flat[getattr(key, "group_name", key) if not isinstance(key, str) else key] = value
    return flat


# ---- tokenizer --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    from transformers import AutoTokenizer

    from models.tiny.build import tokenizer_corpus
    from models.tiny.tokenizer import TokenizerSettings, train_tokenizer

    trained = train_tokenizer(tokenizer_corpus(generate_splits(SMALL, 0)["train"]),
                              TokenizerSettings(vocab_size=512))
    folder = tmp_path_factory.mktemp("tokenizer")
    trained.save_pretrained(folder)
    return AutoTokenizer.from_pretrained(folder)  # test what a user loads


def test_tokenizer_special_tokens_and_digits(tokenizer):
    assert tokenizer.eos_token == tokenizer.pad_token == "<|endoftext|>"
    for special in ("<|endoftext|>", "<|im_start|>", "<|im_end|>"):
        assert len(tokenizer(special, add_special_tokens=False)["input_ids"]) == 1
    assert tokenizer.tokenize("1234") == ["1", "2", "3", "4"]
    assert tokenizer(" hi", add_special_tokens=True)["input_ids"] == \
        tokenizer(" hi", add_special_tokens=False)["input_ids"]  # no BOS/EOS added
    text = "Passage: Zoe Kalomi was born in 1956.\n\\boxed{Kalomi}"
    assert tokenizer.decode(tokenizer(text)["input_ids"]) == text
    assert len(tokenizer) <= 512


def test_tokenizer_chat_template_is_chatml(tokenizer):
    chat = [{"role": "user", "content": "What is 2 + 3?"}]
    prompt = tokenizer.apply_chat_template(chat, tokenize=False, add_generation_prompt=True)
    assert prompt == "<|im_start|>user\nWhat is 2 + 3?<|im_end|>\n<|im_start|>assistant\n"
    full = tokenizer.apply_chat_template(
        chat + [{"role": "assistant", "content": "\\boxed{5}"}], tokenize=False)
    assert full == prompt + "\\boxed{5}<|im_end|>\n"
    without = tokenizer.apply_chat_template(chat, tokenize=False, add_generation_prompt=False)
    assert not without.endswith("assistant\n")


def test_boxed_answer_holds_the_words_own_tokens(tokenizer):
    span_ids = tokenizer("Kalomi")["input_ids"]
    boxed_ids = tokenizer("\\boxed{Kalomi}")["input_ids"]
    assert _contains(boxed_ids, span_ids)  # no "{Kalomi" merge
    # Spaces attach to the next word as in Qwen ("Ġborn"), never a token of their own.
    assert all(token.strip("Ġ") for token in tokenizer.tokenize(" was born in Kalomi."))


def _contains(ids: list[int], part: list[int]) -> bool:
    return any(ids[i:i + len(part)] == part for i in range(len(ids) - len(part) + 1))


# ---- settings, cache lookup and CLI (no training) ---------------------------------------

def test_every_linear_input_width_is_a_multiple_of_128():
    for profile in PROFILES.values():
        assert set(profile.sizes) == set(SIZES)
        for size in profile.sizes.values():
            for width in (size.hidden_size, size.intermediate_size,
                          size.num_attention_heads * size.head_dim):
                assert width % 128 == 0
    with pytest.raises(ValueError, match="multiple of 128"):
        SizeConfig(hidden_size=192, intermediate_size=384, num_hidden_layers=1,
                   num_attention_heads=2, num_key_value_heads=2)


def test_full_ladder_spans_10x_and_its_two_largest_sizes_suit_256_element_blocks():
    """llama.cpp's k-quants work on 256-element blocks of a Linear layer's input."""
    from models.tiny.training import new_model

    class Tokenizer:  # what new_model reads of a tokenizer
        def __len__(self):
            return 1024

        def convert_tokens_to_ids(self, token):
            return 0

    models = {size: new_model(PROFILES["full"].sizes[size], Tokenizer(), 0) for size in SIZES}
    parameters = {size: sum(p.numel() for p in m.parameters()) for size, m in models.items()}
    assert parameters["tiny-l"] >= 10 * parameters["tiny-s"]
    for size in ("tiny-m", "tiny-l"):
        widths = {m.in_features for m in models[size].modules() if isinstance(m, torch.nn.Linear)}
        assert all(width % 256 == 0 for width in widths), (size, widths)


def test_training_states_are_saved_at_evaluations():
    with pytest.raises(ValueError, match="checkpoint_every = 150 is not a multiple of eval_every"):
        TrainSettings(eval_every=100, checkpoint_every=150)


def test_layer_parameters_count_the_decoder_layers_linear_weights():
    """The build orders sizes by `layer_parameters` (largest first); it must be the real
    count, and the full profile's sizes must grow with it."""
    from transformers import Qwen3Config, Qwen3ForCausalLM

    for profile in PROFILES.values():
        for size in profile.sizes.values():
            config = Qwen3Config(vocab_size=128, hidden_size=size.hidden_size,
                                 intermediate_size=size.intermediate_size,
                                 num_hidden_layers=size.num_hidden_layers,
                                 num_attention_heads=size.num_attention_heads,
                                 num_key_value_heads=size.num_key_value_heads,
                                 head_dim=size.head_dim)
            layers = Qwen3ForCausalLM(config).model.layers
            linear = sum(m.weight.numel() for m in layers.modules() if isinstance(m, torch.nn.Linear))
            assert size.layer_parameters == linear
    full = [PROFILES["full"].sizes[size].layer_parameters for size in SIZES]
    assert full == sorted(full) and len(set(full)) == len(full)


def test_training_schedule_starts_the_largest_size_first_one_process_per_core(tmp_path):
    from models.tiny.build import training_schedule
    from models.tiny.training import TrainJob

    full = PROFILES["full"]
    jobs = [TrainJob(size, full.sizes[size], full.train, 0, tmp_path, tmp_path / size) for size in SIZES]
    ordered, workers = training_schedule(jobs, cores=2)
    assert [job.size for job in ordered] == ["tiny-l", "tiny-m", "tiny-s"] and workers == 2
    assert training_schedule(jobs, cores=16)[1] == 3
    assert training_schedule(jobs[:1], cores=1)[1] == 1


def test_a_folder_without_manifest_is_never_used(tmp_path):
    root = cache_root(tmp_path)
    half_built = root / build_name("quick", SIZES, 0)
    (half_built / "tiny-s").mkdir(parents=True)
    assert find_build(root, "quick", SIZES, 0) is None
    (half_built / MANIFEST).write_text(json.dumps(
        {"sizes": list(SIZES), "settings": PROFILES["quick"].settings_for(SIZES)}))
    assert find_build(root, "quick", SIZES, 0).root == half_built
    assert find_build(root, "quick", SIZES, 1) is None
    assert find_build(root, "full", SIZES, 0) is None


def test_cache_key_depends_on_settings_and_seed():
    names = {build_name(p, s, seed) for p in PROFILES for s in (SIZES, ("tiny-s",))
             for seed in (0, 1)}
    assert len(names) == 2 * 2 * len(PROFILES)


SCHEDULE = TrainSettings(warmup_steps=10, eval_every=100, plateau_window=3, min_gain=0.01,
                         min_plateau_steps=0, max_stable_steps=2000, decay_fraction=0.2,
                         min_decay_steps=50)


def _observe_all(schedule, scores, every=100):
    for i, score in enumerate(scores, start=1):
        schedule.observe(i * every, score)


def test_schedule_warms_up_then_holds_the_peak_rate():
    schedule = PlateauSchedule(SCHEDULE, peak_lr=4e-3)
    assert schedule.learning_rate(0) == pytest.approx(4e-4)
    assert schedule.learning_rate(9) == schedule.learning_rate(500) == pytest.approx(4e-3)
    assert not schedule.finished(10_000)  # no plateau seen, no cap reached: keep training


def test_schedule_decays_when_the_window_mean_stops_gaining():
    schedule = PlateauSchedule(SCHEDULE, peak_lr=1.0)
    # windows of 3: (0.50, 0.51, 0.52) then (0.52, 0.53, 0.52): the mean gains 0.013, a gain
    _observe_all(schedule, [0.50, 0.51, 0.52, 0.52, 0.53, 0.52])
    assert schedule.decay_start is None
    schedule.observe(700, 0.52)  # (0.52, 0.53, 0.52) vs (0.51, 0.52, 0.52): +0.0067
    assert schedule.decay_start == 700 and schedule.decay_steps == 140  # 0.2 * 700
    assert schedule.learning_rate(770) == pytest.approx(0.5)
    schedule.observe(800, 0.9)  # a late gain does not restart the constant phase
    assert schedule.decay_start == 700
    assert not schedule.finished(839) and schedule.finished(840)


def test_schedule_one_lucky_evaluation_neither_stops_nor_prolongs_the_rise():
    # A steady rise of 0.01 per evaluation (0.03 per window) with one evaluation 0.05 too
    # high: a best-score-with-patience rule stops at the third evaluation after the spike.
    rising = [0.40 + 0.01 * i for i in range(12)]
    rising[5] += 0.05
    schedule = PlateauSchedule(SCHEDULE, peak_lr=1.0)
    _observe_all(schedule, rising)
    assert schedule.decay_start is None
    # A flat score with one lucky evaluation still reads as a plateau within two windows.
    flat = [0.60, 0.61, 0.60, 0.61, 0.60, 0.66, 0.60, 0.61, 0.60, 0.61]
    schedule = PlateauSchedule(SCHEDULE, peak_lr=1.0)
    _observe_all(schedule, flat)
    assert schedule.decay_start is not None and schedule.decay_start <= 900


def test_schedule_ignores_a_flat_start_before_min_plateau_steps():
    slow_start = [0.03, 0.03, 0.03, 0.03, 0.03, 0.03, 0.03, 0.10, 0.20, 0.30]
    guarded = PlateauSchedule(replace(SCHEDULE, min_plateau_steps=800), peak_lr=1.0)
    _observe_all(guarded, slow_start)
    assert guarded.decay_start is None
    unguarded = PlateauSchedule(SCHEDULE, peak_lr=1.0)
    _observe_all(unguarded, slow_start)
    assert unguarded.decay_start == 600


def test_schedule_decays_at_the_cap_while_still_improving():
    schedule = PlateauSchedule(replace(SCHEDULE, max_stable_steps=1000), peak_lr=1.0)
    for step in range(100, 1100, 100):
        schedule.observe(step, step / 2000)  # +0.05 every evaluation
    assert schedule.decay_start == 1000 and schedule.decay_steps == 200
    short = PlateauSchedule(replace(SCHEDULE, max_stable_steps=100), peak_lr=1.0)
    short.observe(100, 0.1)
    assert short.decay_steps == 50  # min_decay_steps


def test_native_bfloat16_reads_the_cpu_flags(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu avx2 avx512f avx512bw avx512_bf16 amx_tile\n")
    assert native_bfloat16(cpuinfo)
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu avx2 avx512f avx512bw avx512_vnni\n")
    assert not native_bfloat16(cpuinfo)
    assert not native_bfloat16(tmp_path / "absent")


def test_auto_matmul_dtype_is_resolved_into_the_cache_key(monkeypatch):
    keys = {}
    for native in (True, False):
        monkeypatch.setattr(settings_module, "native_bfloat16", lambda: native)
        keys[native] = build_name("full", SIZES, 0)
        assert PROFILES["full"].settings_for(SIZES)["train"]["matmul_dtype"] == (
            "bfloat16" if native else "float32")
    assert keys[True] != keys[False]  # weights trained either way differ


@pytest.mark.parametrize("dtype, expected", [("bfloat16", torch.bfloat16),
                                             ("float32", torch.float32)])
def test_training_matmuls_run_in_the_resolved_dtype(dtype, expected):
    linear = torch.nn.Linear(128, 128)
    with matmul_precision(dtype):
        assert linear(torch.ones(2, 128)).dtype == expected
    assert linear.weight.dtype == torch.float32  # the weights themselves stay float32


def test_training_refuses_an_unresolved_matmul_dtype():
    with pytest.raises(ValueError, match="choices: bfloat16, float32"):
        matmul_precision("auto")


def test_ensure_built_rejects_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="choices: tiny-s, tiny-m, tiny-l"):
        ensure_built(sizes=["tiny-xl"], cache_dir=tmp_path)
    with pytest.raises(ValueError, match="choices: full, quick"):
        ensure_built(profile="fast", cache_dir=tmp_path)
    with pytest.raises(ValueError, match="non-negative"):
        ensure_built(seed=-1, cache_dir=tmp_path)
    assert not any(tmp_path.rglob("*"))  # nothing was built


@pytest.mark.parametrize("arguments, expected", [
    (["build", "--sizes", "tiny-s,huge"], "choices: tiny-s, tiny-m, tiny-l"),
    (["build", "--profile", "fast"], "choose from 'full', 'quick'"),
    (["path", "--seed", "x"], "non-negative integer"),
    (["train"], "choose from 'verify', 'release', 'build', 'path'"),
])
def test_cli_bad_arguments_are_one_line_and_exit_2(arguments, expected, tmp_path):
    result = _cli(arguments, tmp_path)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and expected in result.stderr
    assert result.stderr.startswith("error: ")


def test_cli_path_when_nothing_is_built(tmp_path):
    result = _cli(["path", "--profile", "quick"], tmp_path)
    assert result.returncode == 1 and "python -m models.tiny build" in result.stderr


def _cli(arguments: list[str], cache: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "models.tiny", *arguments], cwd=REPO,
                          env={**os.environ, "QLAB_CACHE": str(cache)},
                          capture_output=True, text=True, timeout=120)


# ---- building (slow) --------------------------------------------------------------------

@pytest.fixture(scope="module")
def quick_family(tmp_path_factory):
    return ensure_built(profile="quick", cache_dir=tmp_path_factory.mktemp("cache"))


@pytest.mark.slow
def test_quick_build_layout_and_report(quick_family):
    root = quick_family.root
    manifest = json.loads((root / MANIFEST).read_text())
    assert manifest["sizes"] == list(SIZES) and manifest["dtype"] == "float32"
    assert manifest["settings"]["train"]["matmul_dtype"] == (
        "bfloat16" if native_bfloat16() else "float32")
    assert not [p.name for p in root.parent.iterdir() if p.name.startswith(".tmp-")]
    for size in SIZES:
        folder = quick_family.model_path(size)
        for name in ("model.safetensors", "config.json", "generation_config.json",
                     "tokenizer.json", "tokenizer_config.json"):
            assert (folder / name).is_file(), (size, name)
    for task in TASKS:
        rows = quick_family.data_path(task).read_text().splitlines()
        assert len(rows) == PROFILES["quick"].data.eval_per_task
    calibration = [json.loads(line)["text"] for line in
                   quick_family.calibration_path.read_text().splitlines()]
    assert len(calibration) == 256 and all(t.startswith("<|im_start|>user\n") for t in calibration)
    assert len(quick_family.calibration_text_path.read_text().splitlines()) == 256
    for size in SIZES:
        report = quick_family.report["sizes"][size]
        assert report["parameters"] > 0 and report["steps"] > 0
        for task in TASKS:
            assert report["held_out"][task]["format_compliance"] >= 0.8, (size, task, report)


@pytest.mark.slow
def test_checkpoint_reloads_in_a_fresh_process_and_answers_boxed(quick_family):
    script = textwrap.dedent("""
        import json, sys, torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
        folder = sys.argv[1]
        model = AutoModelForCausalLM.from_pretrained(folder)
        tokenizer = AutoTokenizer.from_pretrained(folder)
        doc = json.loads(open(sys.argv[2]).readline())
        prompt = tokenizer.apply_chat_template(
            [{"role": "user", "content": sys.argv[3]}], tokenize=False, add_generation_prompt=True)
        inputs = tokenizer(prompt, return_tensors="pt", add_special_tokens=False)
        output = model.generate(**inputs, max_new_tokens=24, do_sample=False)
        print(json.dumps({
            "class": type(model).__name__, "dtype": str(model.dtype),
            "eos": model.generation_config.eos_token_id,
            "im_end": tokenizer.convert_tokens_to_ids("<|im_end|>"),
            "text": tokenizer.decode(output[0, inputs["input_ids"].shape[1]:]),
        }))
    """)
    doc = json.loads(quick_family.data_path("openmath").read_text().splitlines()[0])
    result = subprocess.run(
        [sys.executable, "-c", script, str(quick_family.model_path("tiny-m")),
         str(quick_family.data_path("openmath")), render_prompt("boxed_openmath", doc)],
        capture_output=True, text=True, timeout=300, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["class"] == "Qwen3ForCausalLM" and out["dtype"] == "torch.float32"
    assert out["im_end"] in out["eos"]
    assert "\\boxed{" in out["text"] and out["text"].endswith("<|im_end|>")


@pytest.mark.slow
def test_cache_is_reused_without_retraining(quick_family, monkeypatch):
    manifest = quick_family.root / MANIFEST
    before = (manifest.stat().st_mtime_ns, manifest.read_text())

    def no_training(*args, **kwargs):
        raise AssertionError("ensure_built retrained a cached family")

    monkeypatch.setattr("models.tiny.build._build_atomically", no_training)
    cache_dir = quick_family.root.parent.parent
    assert ensure_built(profile="quick", cache_dir=cache_dir).root == quick_family.root
    subset = ensure_built(sizes=["tiny-s"], profile="quick", cache_dir=cache_dir)
    assert subset.root == quick_family.root  # a build holding more sizes serves fewer
    assert (manifest.stat().st_mtime_ns, manifest.read_text()) == before
    result = _cli(["path", "--profile", "quick"], cache_dir)
    assert result.returncode == 0 and result.stdout.strip() == str(quick_family.root)


@pytest.mark.slow
def test_same_seed_gives_bit_identical_weights_and_another_seed_does_not(
        quick_family, tmp_path):
    again = ensure_built(sizes=["tiny-s"], profile="quick", cache_dir=tmp_path / "again")
    assert again.root != quick_family.root  # really built a second time
    weights = lambda family: (family.model_path("tiny-s") / "model.safetensors").read_bytes()
    assert weights(again) == weights(quick_family)
    for task in TASKS:
        assert again.data_path(task).read_bytes() == quick_family.data_path(task).read_bytes()
    tokenizer_file = lambda family: (family.model_path("tiny-s") / "tokenizer.json").read_bytes()
    assert tokenizer_file(again) == tokenizer_file(quick_family)

    other = ensure_built(sizes=["tiny-s"], profile="quick", seed=1, cache_dir=tmp_path / "other")
    assert weights(other) != weights(quick_family)
    assert other.data_path("arc").read_bytes() != quick_family.data_path("arc").read_bytes()


@pytest.mark.slow
def test_lm_eval_generates_exactly_what_the_training_report_scored(quick_family, tmp_path,
                                                                   monkeypatch):
    """lm-eval's own chat-template generation (HFLM) equals the report's greedy generation."""
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf_datasets"))
    from lm_eval import simple_evaluate
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from models.tiny.evaluation import generate_greedy

    folder = quick_family.model_path("tiny-s")
    model = AutoModelForCausalLM.from_pretrained(folder)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    for task in TASKS:
        write_task_over_file(tmp_path, f"check_{task}", task, quick_family.data_path(task))
    results = simple_evaluate(model=HFLM(pretrained=model, tokenizer=tokenizer, batch_size=8),
                              tasks=[f"check_{t}" for t in TASKS], limit=8, log_samples=True,
                              apply_chat_template=True,
                              task_manager=TaskManager(include_path=str(tmp_path)))
    for task in TASKS:
        samples = results["samples"][f"check_{task}"]
        assert len(samples) == 8
        ours = generate_greedy(model, tokenizer, [render_prompt(LAB_TASK_NAMES[task], s["doc"])
                                                  for s in samples], max_new_tokens=256)
        assert [s["resps"][0][0] for s in samples] == [text for text, _ in ours]
        assert all(stopped for _, stopped in ours)


@pytest.mark.slow
@pytest.mark.parametrize("signal_name", ["SIGKILL", "SIGTERM", "SIGINT"])
def test_killing_the_build_stops_its_training_workers(tmp_path, signal_name):
    """SIGKILL, SIGTERM or Ctrl-C of `python -m models.tiny build` leaves no orphan (training
    or idle) behind; SIGTERM and SIGINT end it at once with one line and exit 143 / 130."""
    import signal
    import time

    import psutil

    build = subprocess.Popen(
        [sys.executable, "-m", "models.tiny", "build", "--profile", "quick", "--sizes", "tiny-s,tiny-m",
         "--cache-dir", str(tmp_path)],
        cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"}, restore_signals=True)
    deadline = time.monotonic() + 300
    workers: list[psutil.Process] = []
    while time.monotonic() < deadline and len(workers) < 3:  # the queue manager + 2 trainers
        workers = psutil.Process(build.pid).children(recursive=True)
        time.sleep(0.5)
    assert len(workers) >= 3, "the build never started its training workers"
    time.sleep(5)  # let them start training
    build.send_signal(getattr(signal, signal_name))
    _, stderr = build.communicate(timeout=60)  # a training worker must not keep the build waiting
    if signal_name != "SIGKILL":
        assert build.returncode == 128 + getattr(signal, signal_name)
        assert stderr.strip().splitlines()[-1] == "interrupted; nothing half-written was kept; rerun to resume"
        assert "Traceback" not in stderr
    _, alive = psutil.wait_procs(workers, timeout=30)
    for process in alive:
        process.kill()
    assert not alive, f"helper processes outlived the build: {[p.cmdline() for p in alive]}"


def _kill_when(build: subprocess.Popen, ready, signal_name: str = "SIGKILL", timeout: float = 600) -> None:
    """Send the build `signal_name` once `ready()` holds: SIGKILL (its training workers die
    with it), or SIGINT / SIGTERM, which it answers with exit code 130 / 143."""
    import signal
    import time

    deadline = time.monotonic() + timeout
    while not ready():
        assert build.poll() is None, "the build ended before it could be killed"
        assert time.monotonic() < deadline, "the build never reached the kill point"
        time.sleep(0.2)
    number = getattr(signal, signal_name)
    build.send_signal(number)
    code = build.wait(timeout=120)
    if signal_name != "SIGKILL":
        assert code == 128 + number, f"{signal_name}: exit code {code}"
    time.sleep(2)  # the workers die with the build (PR_SET_PDEATHSIG)


@pytest.mark.slow
@pytest.mark.parametrize("signals", [("SIGKILL", "SIGKILL"), ("SIGINT", "SIGTERM")])
def test_a_build_killed_twice_resumes_to_the_weights_of_an_uninterrupted_one(quick_family, tmp_path,
                                                                             signals):
    """Killed for real (SIGKILL), or interrupted (Ctrl-C, then SIGTERM), after its first
    saved training state and again after a later one: the third run resumes and ends with
    the uninterrupted build's weights, leaving no partial or temporary folder."""
    command = [sys.executable, "-m", "models.tiny", "build", "--profile", "quick",
               "--sizes", "tiny-s,tiny-l", "--cache-dir", str(tmp_path)]
    start = lambda: subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL,
                                     env={**os.environ, "OMP_NUM_THREADS": "1"})
    state = lambda: next((tmp_path / "tiny").glob(".partial-*/.work/tiny-l.state.pt"), None)
    _kill_when(start(), lambda: state() is not None, signals[0])
    first = state().stat().st_mtime_ns
    _kill_when(start(), lambda: state() is None or state().stat().st_mtime_ns != first, signals[1])

    finished = start()
    assert finished.wait(timeout=600) == 0
    resumed = find_build(cache_root(tmp_path), "quick", ("tiny-s", "tiny-l"), 0)
    assert resumed is not None and resumed.root != quick_family.root
    assert resumed.report["sizes"]["tiny-l"]["resumed_from_steps"], "trained from step 0 again"
    for size in ("tiny-s", "tiny-l"):
        weights = lambda family: (family.model_path(size) / "model.safetensors").read_bytes()
        assert weights(resumed) == weights(quick_family), size
    assert [p.name for p in (tmp_path / "tiny").iterdir() if not p.name.endswith(".lock")] == [
        resumed.root.name]  # no partial or temporary folder left


@pytest.mark.slow
def test_verify_checks_a_builds_checksums_and_recorded_answers(quick_family, tmp_path):
    from models.tiny.release import ReleaseMismatch, verify

    assert verify(quick_family.root, sample=64) == dict.fromkeys(SIZES, 64 * len(TASKS))
    copy = tmp_path / "copy"
    shutil.copytree(quick_family.root, copy)
    answers = copy / "data" / "answers-tiny-s.jsonl"
    rows = [json.loads(line) for line in answers.read_text().splitlines()]
    rows[0]["generation"] += " (edited)"
    answers.write_text("".join(json.dumps(row) + "\n" for row in rows))
    with pytest.raises(BadFile, match="answers-tiny-s.jsonl: has .* bytes.*--force"):
        verify(copy)  # the build's manifest lists it
    manifest = json.loads((copy / MANIFEST).read_text())
    del manifest["files"]
    (copy / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(ReleaseMismatch, match="tiny-s now answers openmath prompt 0"):
        verify(copy)
