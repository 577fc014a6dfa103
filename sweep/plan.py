"""A sweep's cells: one per (model, method, bits) variant, planned and validated before anything runs.

Every model's baseline cell comes first (and one per other dtype a grid entry sets), so
variants share it. Planning composes each cell's quantize config and builds its method,
which says where it runs; invalid cells are all reported at once.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Optional

from common.environments import interpreter, needs_dispatch
from configs.compose import compose
from configs.errors import ConfigError
from configs.sweep_schema import EvalSweepConfig
from evaluate.harness import check_tasks
from quantize.methods.base import build_method
from sweep.cells import Cell, cell_status


def plan_cells(cfg: EvalSweepConfig) -> list[Cell]:
    """Every cell of the sweep, baselines first; invalid cells are all reported at once
    (cells already done were valid when they ran and are not composed again)."""
    spec = cfg.sweep
    paths = [f"output_dir={cfg.output_dir}"]
    eval_common = (f"eval={spec.eval}", f"results_dir={cfg.results_dir}", *spec.eval_overrides)
    cells = []
    for model in spec.models:
        common = (f"model={model}", *paths, *spec.quantize_overrides)
        baseline = Cell(model, "none", ("method=none", *common), eval_common)
        cells += [baseline, *_dtype_baselines(baseline, spec)]
        for grid in spec.methods:
            levels = [f"quant.type={t}" for t in grid.types] or [f"quant.bits={b}" for b in grid.bits] or [None]
            for level in levels:
                quant = [level] if level is not None else []
                quant += [f"quant.group_size={grid.group_size}"] if grid.group_size is not None else []
                overrides = (f"method={grid.method}", *common, *quant, *grid.overrides)
                cells.append(Cell(model, grid.method, overrides, eval_common))
    _validate([cell for cell in cells if cell_status(cfg, cell)["status"] != "done"])
    return cells


def _dtype_baselines(baseline: Cell, spec) -> list[Cell]:
    """A variant is compared with the baseline of its own dtype (evaluate.run.find_baseline),
    so each other dtype a grid sets (AWQ in float16 for a float32 model, say) gets one."""
    dtype_overrides = [tuple(o for o in grid.overrides if o.lstrip("+~").split("=", 1)[0] == "model.dtype")
                       for grid in spec.methods]
    if not any(dtype_overrides):
        return []
    try:
        dtypes = {job_and_method(baseline)[0].model.dtype}
    except ConfigError:  # an invalid baseline is reported with the other invalid cells
        return []
    cells = []
    for overrides in filter(None, dtype_overrides):
        cell = dataclasses.replace(baseline, quantize_overrides=(*baseline.quantize_overrides, *overrides))
        try:
            dtype = job_and_method(cell)[0].model.dtype
        except ConfigError:
            continue
        if dtype not in dtypes:
            dtypes.add(dtype)
            cells.append(cell)
    return cells


def _validate(cells: list[Cell]) -> None:
    problems, eval_problems = [], {}
    for cell in cells:
        try:
            _interpreter_for(job_and_method(cell)[1])  # valid, and its environments are built
        except ConfigError as error:
            problems.append(f"  {cell.id}: {error}")
        if cell.eval_overrides not in eval_problems:  # usually one set for the whole sweep: said once
            eval_problems[cell.eval_overrides] = _eval_problem(cell.eval_overrides)
    eval_lines = [f"  evaluation {list(overrides)}: {problem}" for overrides, problem in eval_problems.items() if problem]
    if problems or eval_lines:
        header = [f"{len(problems)} invalid cell(s)"] * bool(problems) + ["invalid evaluation settings"] * bool(eval_lines)
        raise ConfigError("; ".join(header) + ":\n" + "\n".join(problems + eval_lines))


def _eval_problem(eval_overrides: tuple[str, ...]) -> Optional[str]:
    try:
        run = compose("evaluate_run", ["artifact=.", *eval_overrides])
        check_tasks(run.eval)
    except ConfigError as error:
        return str(error)
    return None


def cell_python(cell: Cell) -> str:
    return _interpreter_for(job_and_method(cell)[1])


def cell_steps(cell: Cell) -> list[tuple[str, str]]:
    """Where a cell runs, step by step, as (interpreter, step): [(python, "cell")] (quantize
    and evaluate in one environment), or, for a method whose artifact loads in another
    environment than it is made in (AutoAWQ: made in legacy, loaded in gptqmodel),
    [(its maker's python, "quantize"), (the loader's python, "cell")]. Raises ConfigError
    if an environment is missing."""
    method = job_and_method(cell)[1]
    load = _interpreter_for(method)
    if method.load_environment in (None, method.environment):
        return [(load, "cell")]
    make = (str(interpreter(method.environment, method.runs_in(), method.alternative()))
            if needs_dispatch(method.environment) else sys.executable)
    return [(make, "quantize"), (load, "cell")]


def _interpreter_for(method) -> str:
    """The interpreter a cell runs with: that of the environment its artifact loads in
    (where it is evaluated), which is where its method runs except for AutoAWQ's."""
    if method.load_environment not in (None, method.environment) and needs_dispatch(method.environment):
        # its quantize step needs this one: missing says so now
        interpreter(method.environment, method.runs_in(), method.alternative())
    environment = method.load_environment or method.environment
    if not needs_dispatch(environment):
        return sys.executable
    return str(interpreter(environment, method.runs_in(), method.alternative()))


def job_and_method(cell: Cell):
    """The cell's validated quantize config and its method (no weights loaded)."""
    job = compose("quantize", list(cell.quantize_overrides))
    return job, build_method(job.method, job.quant, job.model.dtype)


