"""The tiny-family release in the repository: it matches the code, the lab uses it when
the cache holds no default build, and a damaged file is one clear error naming it."""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from configs.errors import BadFile
from models.tiny import build as build_module
from models.tiny import ensure_built
from models.tiny.family import RELEASE_MANIFEST, TinyFamily
from models.tiny.generator import GENERATOR_VERSION, TASKS
from models.tiny.release import (RELEASE_DIR, STORED_DTYPE, check_files, file_table,
                                 load_release, stale_settings, verify)
from models.tiny.settings import SIZES
from tests.conftest import REPO_ROOT

RELEASE_BUDGET_BYTES = 30 * 1000 * 1000


@pytest.fixture(scope="module")
def manifest() -> dict:
    return json.loads((RELEASE_DIR / RELEASE_MANIFEST).read_text())


def no_training(*args, **kwargs):
    raise AssertionError("the family was trained instead of taken from the release")


# ---- the release matches the code (fails when the code changes without a new release) ----

def test_release_was_made_with_the_current_default_settings_and_versions(manifest):
    assert stale_settings(manifest) == [], (
        "the tiny-family release no longer matches the code: rebuild it "
        "(`python -m models.tiny build`, then `python -m models.tiny release <build folder>`)")
    assert manifest["generator_version"] == GENERATOR_VERSION
    assert manifest["sizes"] == list(SIZES)


def test_release_files_match_their_checksums_and_fit_the_budget(manifest):
    check_files(RELEASE_DIR, manifest)
    listed = set(manifest["files"])
    present = {str(p.relative_to(RELEASE_DIR)) for p in RELEASE_DIR.rglob("*") if p.is_file()}
    assert present - {RELEASE_MANIFEST} == listed  # nothing unlisted
    assert sum(f["bytes"] for f in manifest["files"].values()) <= RELEASE_BUDGET_BYTES
    assert manifest["stored_dtype"] == STORED_DTYPE
    for size in SIZES:
        config = json.loads((RELEASE_DIR / size / "config.json").read_text())
        assert config["dtype"] == STORED_DTYPE
        assert (RELEASE_DIR / size / "chat_template.jinja").is_file()


def test_an_installed_package_carries_every_release_file(manifest):
    """`pip install .` ships the release: pyproject's package data covers every listed file."""
    patterns = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    shipped = {path for pattern in patterns["models.tiny"] for path in RELEASE_DIR.parent.glob(pattern)}
    assert {RELEASE_DIR / name for name in [RELEASE_MANIFEST, *manifest["files"]]} <= shipped


def test_release_held_out_sets_are_powered_and_the_ladder_spans_10x(manifest):
    family = TinyFamily(RELEASE_DIR)
    for task in TASKS:
        assert len(family.data_path(task).read_text().splitlines()) >= 1000
    parameters = [family.report["sizes"][size]["parameters"] for size in SIZES]
    assert parameters == sorted(parameters) and parameters[-1] >= 10 * parameters[0]
    for size in SIZES:  # format compliance and accuracy far above chance on every task
        for task, scores in manifest["held_out_stored"][size].items():
            assert scores["n"] >= 1000 and scores["format_compliance"] >= 0.95, (size, task)
            assert scores["accuracy"] >= 0.5, (size, task)


def test_release_regenerates_its_recorded_held_out_answers():
    compared = verify(RELEASE_DIR, sample=64)
    assert compared == dict.fromkeys(SIZES, 64 * len(TASKS))


# ---- how the lab uses it ----------------------------------------------------------------

def test_ensure_built_uses_the_release_when_the_cache_has_no_default_build(tmp_path, monkeypatch):
    monkeypatch.setattr(build_module, "_build_atomically", no_training)
    assert ensure_built(cache_dir=tmp_path).root == RELEASE_DIR
    assert ensure_built(sizes=["tiny-l"], cache_dir=tmp_path).root == RELEASE_DIR
    with pytest.raises(AssertionError, match="trained instead"):
        ensure_built(cache_dir=tmp_path, use_release=False)  # `python -m models.tiny build`
    with pytest.raises(AssertionError, match="trained instead"):
        ensure_built(cache_dir=tmp_path, seed=1)  # the release is seed 0 only


def test_a_damaged_release_file_is_one_error_naming_it(tmp_path, monkeypatch):
    copy = tmp_path / "release"
    shutil.copytree(RELEASE_DIR, copy)
    monkeypatch.setattr(build_module, "load_release", functools.partial(load_release, copy))
    monkeypatch.setattr(build_module, "_build_atomically", no_training)
    weights = copy / "tiny-m" / "model.safetensors"
    with open(weights, "r+b") as handle:  # truncated
        handle.truncate(weights.stat().st_size // 2)
    with pytest.raises(BadFile, match=r"tiny-m/model.safetensors: has \d+ bytes.*truncated"):
        ensure_built(cache_dir=tmp_path / "cache")
    shutil.copy(RELEASE_DIR / "tiny-m" / "model.safetensors", weights)
    assert ensure_built(cache_dir=tmp_path / "cache").root == copy

    answers = copy / "data" / "answers-tiny-s.jsonl"  # edited, same size
    text = answers.read_bytes()
    answers.write_bytes(text[:-2] + (b"x" if text[-2:-1] != b"x" else b"y") + text[-1:])
    with pytest.raises(BadFile, match=r"answers-tiny-s.jsonl: differs .* sha256") as error:
        ensure_built(cache_dir=tmp_path / "cache")
    assert "\n" not in str(error.value) and "git checkout" in str(error.value)


# ---- the checks themselves, on a made-up release ----------------------------------------

def test_check_files_reports_missing_truncated_and_edited_files(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "a.txt").write_text("hello")
    (tmp_path / "b.bin").write_bytes(b"\x00" * 10)
    manifest = {"files": file_table(tmp_path)}
    check_files(tmp_path, manifest)
    (tmp_path / "data" / "a.txt").write_text("hellO")
    with pytest.raises(BadFile, match="a.txt: differs"):
        check_files(tmp_path, manifest)
    (tmp_path / "data" / "a.txt").write_text("hell")
    with pytest.raises(BadFile, match="a.txt: has 4 bytes, the release manifest says 5"):
        check_files(tmp_path, manifest)
    (tmp_path / "data" / "a.txt").unlink()
    with pytest.raises(BadFile, match="a.txt: is missing"):
        check_files(tmp_path, manifest)


def test_stale_settings_names_what_changed_but_not_the_matmul_dtype(manifest):
    other_cpu = json.loads(json.dumps(manifest))
    other_cpu["settings"]["train"]["matmul_dtype"] = "float32"  # built on a CPU without bf16
    assert stale_settings(other_cpu) == []
    changed = json.loads(json.dumps(manifest))
    changed["generator_version"] += 1
    changed["settings"]["data"]["eval_per_task"] += 1
    assert stale_settings(changed) == ["generator_version", "settings"]


def test_cli_path_with_an_empty_cache_names_the_release(tmp_path):
    result = subprocess.run([sys.executable, "-m", "models.tiny", "path"], capture_output=True,
                            text=True, env={**os.environ, "QLAB_CACHE": str(tmp_path)}, timeout=120,
                            cwd=Path(__file__).resolve().parents[2])
    assert result.returncode == 0 and result.stdout.strip() == str(RELEASE_DIR)
