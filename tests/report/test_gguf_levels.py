"""GGUF levels in the report: Q4_K_M, Q4_K_S and Q4_0 are all "4-bit" for the quantizer's
nominal width, but three different files; the report must keep them apart everywhere (rows,
labels, plot points, viability, cliffs), ordered by their effective bits per weight, with a
level whose tensors fell back to another type labelled as such.

The records are written as `evaluate run` writes them: the artifact fields and label come
from `evaluate.native` applied to GGUF manifests shaped like the quantizer's.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd
import pytest

from configs.report_schema import ReportConfig
from evaluate import native
from report.build import analyse, build_report
from report.findings import findings
from report.plots import curve_lines, map_columns
from tests.report.builder import Spec, write_store

# (level, effective bits per weight, fallback tensors) per model, as llama.cpp wrote them: the
# small model's 128-wide rows cannot hold k-quants (12 of 24 tensors fall back); the large one's can.
LEVELS = {
    "small": {"Q4_K_M": (6.5114, {f"t{i}": "Q5_0" for i in range(11)} | {"t11": "Q8_0"}),
              "Q4_K_S": (6.2897, {f"t{i}": "Q5_0" for i in range(12)}),
              "Q4_0": (5.6869, {})},
    "large": {"Q4_K_M": (4.8912, {}), "Q4_K_S": (4.5788, {}), "Q4_0": (4.5103, {})},
}
LOST = {"Q4_K_M": 1, "Q4_K_S": 4, "Q4_0": 60}  # answers lost against the baseline (of 400)


@dataclass
class GGUFSpec(Spec):
    level: str = "Q4_K_M"
    bpw: float = 4.5
    fallbacks: dict = field(default_factory=dict)

    def manifest(self) -> dict:
        types = {f"t{i}": "Q4_K" for i in range(24)} | self.fallbacks
        return {"label": f"gguf-{self.level}", "method": {"name": "gguf", "artifact_format": "gguf",
                                                         "options": {"imatrix": False, "threads": 1}},
                "gguf": {"type": self.level, "bits_per_weight": self.bpw, "tensor_types": types,
                         "fallback_tensors": self.fallbacks}}

    @property
    def label(self) -> str:
        return native.label(self.manifest())

    def artifact(self) -> dict:
        return {**super().artifact(), **native.record_fields(self.manifest())}


def specs() -> list[Spec]:
    out: list[Spec] = []
    for model, size in (("small", 0.5), ("large", 3.0)):
        out.append(Spec(model=model, params_b=size, decode_tps=100.0, memory_gib=1.0))
        for level, (bpw, fallbacks) in LEVELS[model].items():
            out.append(GGUFSpec(model=model, method="gguf", bits=4, group=None, params_b=size, lost=LOST[level],
                                level=level, bpw=bpw, fallbacks=fallbacks, decode_tps=200.0, memory_gib=0.5,
                                disk_gib=bpw / 16))
    return out


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return write_store(tmp_path_factory.mktemp("gguf") / "results", specs(),
                       {"math": (400, {"small": 240, "large": 320}, True)})


@pytest.fixture(scope="module")
def analysis(store):
    return analyse(ReportConfig(results_dir=str(store)))


def test_a_fallback_level_is_labelled_with_its_fallbacks_and_bits_per_weight():
    small = {s.level: s.label for s in specs() if s.model == "small" and isinstance(s, GGUFSpec)}
    assert small["Q4_K_M"] == "gguf Q4_K_M, 12 of 24 tensors Q5_0/Q8_0 (6.51 bpw)"
    assert small["Q4_K_S"] == "gguf Q4_K_S, 12 of 24 tensors Q5_0 (6.29 bpw)"
    assert small["Q4_0"] == "gguf Q4_0 (5.69 bpw)"


def test_three_4_bit_levels_are_three_variants_ordered_by_bits_per_weight(analysis):
    for model, levels in LEVELS.items():
        rows = analysis.summary[(analysis.summary.model == model) & (analysis.summary.method == "gguf")]
        assert list(rows.level) == ["Q4_K_M", "Q4_K_S", "Q4_0"], model  # the report's order: high bits first
        assert list(rows.bits) == pytest.approx([bpw for bpw, _ in levels.values()])
        assert rows.label.is_unique and len(rows) == 3
        assert list(rows.weight_bits) == [4, 4, 4]  # nominal, as asked for
    deploy = analysis.deploy[analysis.deploy.method == "gguf"]
    assert len(deploy) == 6 and deploy.label.is_unique  # one point each on the Pareto plots
    assert deploy.set_index("label").loc["gguf Q4_0 (5.69 bpw)", "bits"] == pytest.approx(5.6869)


def test_the_delta_curve_has_one_point_per_level_at_its_effective_bits(analysis):
    rows = analysis.by_task[(analysis.by_task.scope == "all") & (analysis.by_task.method == "gguf")]
    lines = {line["model"]: line for line in curve_lines(rows)}
    small = lines["small"]
    assert list(small["x"]) == pytest.approx([6.5114, 6.2897, 5.6869])
    assert small["levels"] == ["Q4_K_M", "Q4_K_S", "Q4_0"]
    assert list(small["y"]) == pytest.approx([-0.25, -1.0, -15.0])


def test_the_viability_map_and_table_keep_one_column_per_level(analysis):
    columns = [name for scheme, name in map_columns(analysis.summary) if scheme.startswith("gguf")]
    assert columns == ["gguf Q4_K_M (4.89–6.51 bpw)", "gguf Q4_K_S (4.58–6.29 bpw)", "gguf Q4_0 (4.51–5.69 bpw)"]
    viability = analysis.thresholds[analysis.thresholds.method == "gguf"]
    assert list(viability.level) == ["Q4_K_M", "Q4_K_S", "Q4_0"]
    assert list(viability.sizes_tested) == [2, 2, 2]
    assert list(viability.bits) == pytest.approx([(6.5114 + 4.8912) / 2, (6.2897 + 4.5788) / 2, (5.6869 + 4.5103) / 2], abs=1e-4)
    assert viability.set_index("level").loc["Q4_0", "not_viable"] == "small (unacceptable), large (unacceptable)"


def test_the_cliff_is_at_the_level_that_drops(analysis, store):
    cliffs = analysis.cliffs.set_index(["model", "method"])
    small = cliffs.loc[("small", "gguf")]
    assert (small.cliff_level, small.cliff) == ("Q4_0", "gguf Q4_0 (5.69 bpw)")
    assert small.last_ok == "gguf Q4_K_S, 12 of 24 tensors Q5_0 (6.29 bpw)"
    said = " ".join(findings(analysis, ReportConfig(results_dir=str(store))))
    assert "small gguf at Q4_0 (5.69 bits per weight)" in said
    assert "Q4_K_M viable at every size tested" in said


def test_markdown_and_html_show_every_level_with_its_label(store, tmp_path):
    paths = build_report(ReportConfig(results_dir=str(store), output_dir=str(tmp_path / "report")))
    markdown, html = paths.markdown.read_text(), paths.html.read_text()
    for text in ("gguf Q4_K_M, 12 of 24 tensors Q5_0/Q8_0 (6.51 bpw)", "gguf Q4_0 (4.51 bpw)"):
        assert text in markdown and text in html
    assert "| small | 500M | gguf | gguf Q4_K_S, 12 of 24 tensors Q5_0 (6.29 bpw) | 6.29 | – |" in markdown
    variants = pd.read_csv(paths.tables["variants"])
    assert len(variants[variants.method == "gguf"]) == 6
