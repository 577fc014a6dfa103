"""Schema of `python -m evaluate sweep`: models x methods x bits, and where cells run."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from configs.errors import ConfigError, choices_error

LAUNCHERS = ("local", "submitit_local", "slurm")


@dataclass
class MethodGrid:
    """One method and the bit widths (or GGUF levels, and other settings) it is swept over."""

    method: str = "rtn"
    bits: List[int] = field(default_factory=list)  # empty: the method's default (e.g. bnb_nf4)
    types: List[str] = field(default_factory=list)  # GGUF levels (method=gguf): quant.type per cell
    group_size: Optional[int] = None  # None: the method's default
    overrides: List[str] = field(default_factory=list)  # e.g. ["method.actorder=static"]


@dataclass
class SweepSpec:
    name: str = "custom"
    models: List[str] = field(default_factory=list)
    methods: List[MethodGrid] = field(default_factory=list)
    eval: str = "tiny"  # an eval set (hydra_conf/eval/<name>.yaml)
    quantize_overrides: List[str] = field(default_factory=list)  # applied to every cell
    eval_overrides: List[str] = field(default_factory=list)


@dataclass
class LauncherConfig:
    """Where cells run. Slurm keys follow hydra-submitit-launcher's SlurmQueueConf."""

    name: str = "local"
    max_parallel: int = 1  # local: cells at once; slurm: array parallelism
    # local (and inside each submitit job): cells a worker process runs before it is
    # replaced; None: as many as it is given; 1: a fresh process per cell.
    cells_per_worker: Optional[int] = None
    # submitit_local / slurm: cells per job (the array runs over batches); None: chosen
    # from the grid, ceil(cells / max_parallel), so the array fills its parallelism.
    cells_per_job: Optional[int] = None
    partition: Optional[str] = None
    account: Optional[str] = None
    qos: Optional[str] = None
    gpus_per_node: int = 0
    cpus_per_task: int = 2
    mem_gb: int = 16
    timeout_min: int = 240
    setup: List[str] = field(default_factory=list)  # shell lines run before each job
    max_num_timeout: int = 3  # requeues after preemption or time limit
    additional_parameters: Dict[str, Any] = field(default_factory=dict)

    def validate(self) -> None:
        if self.name not in LAUNCHERS:
            raise choices_error("launcher.name", self.name, LAUNCHERS)
        for key in ("max_parallel", "cells_per_worker", "cells_per_job"):
            value = getattr(self, key)
            if value is not None and value < 1:
                raise ConfigError(f"launcher.{key}={value} must be >= 1" + (" (or null)" if key != "max_parallel" else ""))


@dataclass
class EvalSweepConfig:
    sweep: SweepSpec = field(default_factory=SweepSpec)
    launcher: LauncherConfig = field(default_factory=LauncherConfig)
    dry_run: bool = False
    retry_failed: bool = False
    output_dir: str = "lab/artifacts"
    results_dir: str = "lab/results"
    sweeps_dir: str = "lab/sweeps"
    report: bool = True  # build the method comparison report at the end

    def validate(self) -> None:
        self.launcher.validate()
        if not self.sweep.models:
            raise ConfigError("sweep.models is empty; choose a sweep (sweep=demo) or set sweep.models=[...]")
        if not self.sweep.methods:
            raise ConfigError("sweep.methods is empty; set sweep.methods or choose a sweep (sweep=demo)")
        for grid in self.sweep.methods:
            if grid.types and grid.bits:
                raise ConfigError(f"sweep.methods entry {grid.method}: set either bits or types (GGUF levels), "
                                  "not both")
