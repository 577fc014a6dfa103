"""python -m evaluate report [key=value ...]: build the report; with gate.* set, a CI gate.

Exit codes: 0 built (and the gate, if any, passed); 1 the gate failed (the variants under
the threshold are named on stderr); 2 a bad setting or an empty/unusable results store.
"""

from __future__ import annotations

import logging
import sys

from omegaconf import OmegaConf

from configs import compose as composing
from configs.errors import ConfigError
from configs.report_schema import ReportConfig
from report.build import build_report

USAGE = """usage: python -m evaluate report [key=value ...]

Build the method comparison report (HTML, Markdown with PNGs, CSV) from the results store.
No model is loaded.

common settings:
  results_dir=lab/results  output_dir=<results_dir>/report  primary_metric=accuracy|rescored_accuracy
  models=[tiny-s,tiny-m]  methods=[rtn,gptq]  tasks=[gsm8k_boxed]        filters (baselines always kept)
  tiers.negligible=-3 tiers.acceptable=-5 tiers.concerning=-10  tiers.viable=acceptable
  stats.correction=holm  stats.alpha=0.05  +floor.chance.<task>=0.25  cliff.tier_drop=2
  cost.usd_per_gpu_hour=2.0  decisions.memory_budgets_gb=[4,8,16,24,80]
  gate.min_recovery=0.95  gate.per_task=true  gate.fail_on_suspect=false  exit 1 under the threshold or on a suspect pipeline
  --cfg    print the composed config and exit
"""


def compose_report(overrides: list[str]) -> ReportConfig:
    return composing.compose("report", overrides)


def main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    logging.getLogger("matplotlib").setLevel(logging.WARNING)
    if argv and argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0
    try:
        if "--cfg" in argv:
            print(OmegaConf.to_yaml(composing.compose_dict("report", [a for a in argv if a != "--cfg"])))
            return 0
        cfg = compose_report(argv)
        paths = build_report(cfg)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    for path in (paths.html, paths.markdown):
        if path is not None:
            print(path)
    if paths.gate.enabled:
        print(paths.gate.message(), file=sys.stdout if paths.gate.passed else sys.stderr)
    return 0 if paths.gate.passed else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
