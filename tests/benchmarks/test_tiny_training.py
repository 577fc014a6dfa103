"""The tiny-family training benchmark runs the lab's real training step in both arms."""

from __future__ import annotations

import json

import pytest

from benchmarks import tiny_training
from benchmarks.summarize import render


def test_tiny_training_times_both_arms_and_renders(tmp_path):
    out = tmp_path / "results" / "tiny_training.json"
    out.parent.mkdir()
    assert tiny_training.main(["--sizes", "tiny-s", "--steps", "2", "--repeats", "1",
                               "--warmup", "0", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    size = result["sizes"]["tiny-s"]
    assert size["bfloat16"]["seconds_per_step"] > 0 and size["float32"]["seconds_per_step"] > 0
    # the ratio is rounded to 4 digits from the unrounded medians: it can differ by one unit in
    # the last digit from the ratio of the stored (6-digit) medians
    assert size["float32_over_bfloat16"]["ratio_of_medians"] == pytest.approx(
        size["float32"]["wall_s"]["median"] / size["bfloat16"]["wall_s"]["median"], abs=1.5e-4)
    assert isinstance(result["native_bfloat16"], bool)
    assert "tiny_training (tiny-s)" in render(out.parent)
