"""Fixture stores for the report tests (see builder.py for the hand-computed numbers)."""

from __future__ import annotations

import pytest

from tests.report.builder import SWEEP_TASKS, sweep_specs, write_store


def pytest_configure(config):
    config.addinivalue_line("markers", "browser: opens the HTML report in headless Chromium (apt-get install chromium)")


@pytest.fixture(scope="session")
def sweep_store(tmp_path_factory):
    """The two-model sweep of builder.sweep_specs(); read-only, shared by the tests."""
    return write_store(tmp_path_factory.mktemp("sweep") / "results", sweep_specs(), SWEEP_TASKS)


@pytest.fixture(scope="session")
def sweep_report(sweep_store, tmp_path_factory):
    """The full report (HTML, Markdown, CSV, plots) of the sweep, built once."""
    from configs.report_schema import ReportConfig
    from report.build import build_report

    out = tmp_path_factory.mktemp("report")
    cfg = ReportConfig(results_dir=str(sweep_store), output_dir=str(out))
    cfg.cost.usd_per_gpu_hour = 3.6
    cfg.decisions.memory_budgets_gb = [0.2, 1.0, 2.0, 4.0, 8.0]
    return build_report(cfg)
