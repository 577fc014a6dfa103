"""Run a module as `python -m` would, recording evidence of model loading.

    python benchmarks/audit_run.py --log FILE.json -m evaluate sweep [overrides...]

A `sys.addaudithook` hook records, for the process it runs in:
  - every file opened from Python whose name looks like weights (.safetensors, .bin, .pt,
    .pth, .gguf; this catches torch.load and hqq's qmodel.pt),
  - every subprocess started (the local sweep launcher runs one process per cell),
and at exit which model-loading modules were ever imported (safetensors' loader is
Rust code whose file opens Python cannot see, so a model load is also detected by
`transformers.modeling_utils` / `safetensors` / `hqq.models` having been imported).
The JSON goes to --log; the module's exit code is passed through.
"""

from __future__ import annotations

import atexit
import json
import runpy
import sys

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf")
LOADING_MODULES = ("transformers.modeling_utils", "safetensors", "safetensors.torch", "hqq.models.hf.base",
                   "bitsandbytes")


def main() -> None:
    argv = sys.argv[1:]
    if len(argv) < 3 or argv[0] != "--log" or argv[2] != "-m":
        raise SystemExit("usage: audit_run.py --log FILE.json -m MODULE [args...]")
    log_file, module, args = argv[1], argv[3], argv[4:]
    evidence = {"weight_files_opened": [], "subprocesses": [], "loading_modules_imported": []}

    def hook(event: str, payload: tuple) -> None:
        if event == "open" and payload and isinstance(payload[0], (str, bytes)):
            name = payload[0].decode() if isinstance(payload[0], bytes) else payload[0]
            if name.endswith(WEIGHT_SUFFIXES):
                evidence["weight_files_opened"].append(name)
        elif event == "subprocess.Popen":
            executable, cmd_args = payload[0], payload[1]
            evidence["subprocesses"].append([str(a) for a in (cmd_args or [executable])][:8])

    def report() -> None:
        evidence["loading_modules_imported"] = [m for m in LOADING_MODULES if m in sys.modules]
        with open(log_file, "w") as handle:
            json.dump(evidence, handle, indent=1)

    atexit.register(report)
    sys.addaudithook(hook)
    sys.argv = [module, *args]
    sys.path.insert(0, "")  # what `python -m` puts first: the working directory
    runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
