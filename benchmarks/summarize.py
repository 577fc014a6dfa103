"""Render the results table of docs/benchmarks.md from benchmarks/results/*.json.

    python -m benchmarks.summarize            # rewrite the part between the markers in docs/benchmarks.md
    python -m benchmarks.summarize --print    # print the table only

Only the text between `<!-- results:begin -->` and `<!-- results:end -->` is generated;
the rest of docs/benchmarks.md is prose kept by hand.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from benchmarks.common import DOCS_FILE, RESULTS_DIR

BEGIN, END = "<!-- results:begin -->", "<!-- results:end -->"


def _fmt(value, digits: int = 3) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "**no**"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _meets(value, target: float):
    return None if value is None else value <= target


def _machine(data: dict) -> str:
    m = data.get("machine") or {}
    git = (m.get("git") or {}).get("commit") or ""
    load = m.get("load_average") or ["?"]
    return (f"{m.get('cpus_available') or m.get('cpu_count')} CPUs, torch threads {m.get('torch_threads')}, "
            f"load {load[0]}, torch {(m.get('versions') or {}).get('torch')}, git {git[:8]}"
            + (" (dirty)" if (m.get("git") or {}).get("dirty") else ""))


def rows_quantize(data: dict) -> list[list[str]]:
    rows = []
    for method, r in data["methods"].items():
        sub, inproc = r["subprocess"]["lab_over_direct"], r["in_process"]
        rows.append([
            f"quantize_overhead ({method})",
            f"wall {_fmt(sub['wall']['ratio_of_medians'])} (paired {_fmt(sub['wall']['median_paired_ratio'])}); "
            f"CPU {_fmt(sub.get('cpu', {}).get('ratio_of_medians'))}; quantize step "
            f"{_fmt(inproc['quantize_seconds']['lab_over_direct']['ratio_of_medians'])}; load+quantize+save "
            f"{_fmt(inproc['total_seconds']['lab_over_direct']['ratio_of_medians'])}; identical output "
            f"{_fmt(r['same_output']['identical'])}",
            "lab/direct <= 1.05",
            f"wall {_fmt(r['meets_target']['subprocess_wall'])}, CPU "
            f"{_fmt(_meets(sub.get('cpu', {}).get('ratio_of_medians'), 1.05))}, step "
            f"{_fmt(r['meets_target']['in_process_quantize'])}",
            f"{data['model']['name']} ({data['model']['tiny_profile']}), n={data['repeats']}",
        ])
    return rows


def rows_eval(data: dict) -> list[list[str]]:
    rows = []
    for task, r in data["tasks"].items():
        c = r["lab_over_cli"]
        rows.append([
            f"eval_overhead ({task})",
            f"wall {_fmt(c['wall']['ratio_of_medians'])} (paired {_fmt(c['wall']['median_paired_ratio'])}); "
            f"CPU {_fmt(c.get('cpu', {}).get('ratio_of_medians'))}; identical scores {_fmt(r['scores']['identical'])}"
            + (f", identical samples {r['scores']['samples']['identical']}/{r['scores']['samples']['compared']}"
               if "samples" in r["scores"] else ""),
            "lab/cli <= 1.05, same scores",
            _fmt(bool(r["meets_target"] and r["scores"]["identical"])),
            f"{data['model']['name']} ({data['model']['tiny_profile']}), limit {data['limit']}, batch "
            f"{data['batch_size']}, n={data['repeats']}",
        ])
    return rows


def rows_batched(data: dict) -> list[list[str]]:
    t = data["throughput_batched_over_sequential"]
    same = data["identical_responses"]
    return [[
        "batched_generation",
        f"throughput batch {data['batch_size']} / batch 1: {_fmt(t['ratio_of_medians'])} (paired "
        f"{_fmt(t['median_paired_ratio'])}); {_fmt(data['batched']['tokens_per_s']['median'], 1)} vs "
        f"{_fmt(data['sequential']['tokens_per_s']['median'], 1)} tokens/s; identical responses {same['same']}/{same['of']}",
        "(report)", "-",
        f"{data['model']['name']} ({data['model']['tiny_profile']}), {data['task']}, {data['limit']} prompts, "
        f"n={data['repeats']}",
    ]]


def rows_tiny_training(data: dict) -> list[list[str]]:
    return [[
        f"tiny_training ({size})",
        f"step time float32 / bfloat16: {_fmt(r['float32_over_bfloat16']['ratio_of_medians'])} (paired "
        f"{_fmt(r['float32_over_bfloat16']['median_paired_ratio'])}); {_fmt(r['bfloat16']['seconds_per_step'])} "
        f"vs {_fmt(r['float32']['seconds_per_step'])} s/step",
        "(report)", "-",
        f"full profile, native bfloat16 {_fmt(data['native_bfloat16'])}, {data['steps_per_round']} steps, "
        f"n={data['repeats']}",
    ] for size, r in data["sizes"].items()]


def rows_sweep(data: dict, name: str) -> list[list[str]]:
    kind = "validation, not the official result" if data.get("validation") else "official"
    return [[
        name,
        f"rerun of {data['cells']} cells: {_fmt(data['rerun']['wall_s']['median'], 2)} s (without the report "
        f"{_fmt(data['rerun_no_report']['wall_s']['median'], 2)} s); all reused {_fmt(data['summaries_all_reused'])}; "
        f"no model loaded {_fmt(data['no_model_loaded'])}",
        "< 10 s, >= 50 cells", "n/a (validation)" if data.get("validation") else _fmt(data["meets_target"]),
        f"{kind}, n={data['repeats']}",
    ]]


def rows_sweep_workers(data: dict, name: str) -> list[list[str]]:
    c = data["process_per_cell_over_workers"]
    workers, fresh = data["workers"]["wall_s"]["median"], data["process_per_cell"]["wall_s"]["median"]
    return [[
        name,
        f"{data['cells']} cells ({data['slice']} sweep, {data['max_parallel']} at a time), process per cell / workers: "
        f"wall {_fmt(c['wall']['ratio_of_medians'], 2)} (paired {_fmt(c['wall']['median_paired_ratio'], 2)}); CPU "
        f"{_fmt(c.get('cpu', {}).get('ratio_of_medians'), 2)}; {workers / 60:.1f} vs {fresh / 60:.1f} min; identical "
        f"outputs {_fmt(data['identical_outputs'])}",
        ">= 3x, identical outputs", _fmt(data["meets_target"]), f"n={data['repeats']}",
    ]]


def rows_demo(data: dict) -> list[list[str]]:
    rows = []
    for part, r in data["parts"].items():
        rows.append([f"demo_and_tests ({part})", f"{r['wall_s'] / 60:.1f} min, exit {r['returncode']}; "
                     f"{_fmt(r['ratio_to_target'])} of the target", f"< {r['target_s'] / 60:.0f} min",
                     _fmt(r["meets_target"]), "once"])
    return rows


def rows_gpu(data: dict) -> list[list[str]]:
    ok = sum(c["status"] == "ok" for c in data["cells"])
    where = data.get("gpu") or f"{data['device']} (no CUDA)"
    skipped = "; ".join(s["what"] for s in data.get("skipped", [])) or "nothing"
    return [["gpu_check", f"{ok}/{len(data['cells'])} cells ok on {where}; skipped: {skipped}",
             "every method runs on CUDA", _fmt(bool(data["device"] == "cuda" and ok == len(data["cells"]))),
             "see the gpu_check section"]]


def gpu_details(data: dict) -> list[str]:
    """Per-cell table of the gpu_check run."""
    batches = [str(b) for b in data["settings"]["batch_sizes"]]
    bw = "data_sheet" if "data_sheet" in data["bandwidth_bytes_per_s"] else (
        "given" if "given" in data["bandwidth_bytes_per_s"] else "measured_copy")
    head = ["model", "method", "status", "quantize s", "peak mem GB"]
    for b in batches:
        head += [f"TTFT s (b{b})", f"decode tok/s (b{b})", f"latency/prompt s (b{b})", f"decode / bound (b{b})"]
    lines = [f"gpu_check cells on {data.get('gpu') or data['device']}: prompt {data['settings']['prompt_tokens']} "
             f"tokens, {data['settings']['new_tokens']} new tokens; bound from the {bw.replace('_', ' ')} bandwidth "
             f"({data['bandwidth_bytes_per_s'][bw] / 1e9:.0f} GB/s)", "",
             *([data["note"], ""] if data.get("note") else []),
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for c in data["cells"]:
        q = c.get("quantize") or {}
        mem = q.get("peak_vram_bytes") or q.get("process_max_rss_bytes")
        row = [c["model"], c["method"], c["status"] if c["status"] == "ok" else f"failed: {c.get('error', '')[:80]}",
               _fmt((q.get("timing") or {}).get("quantize_seconds"), 2), _fmt(mem / 1e9 if mem else None, 2)]
        for b in batches:
            sp = ((c.get("speed") or {}).get("by_batch") or {}).get(b) or {}
            bound = ((c.get("bandwidth_bound") or {}).get(b) or {}).get(bw) or {}
            row += [_fmt(sp.get("time_to_first_token_s"), 4), _fmt(sp.get("decode_tokens_per_s"), 1),
                    _fmt(sp.get("latency_per_prompt_s"), 4), _fmt(bound.get("ratio"), 3)]
        lines.append("| " + " | ".join(x.replace("|", "\\|") for x in row) + " |")
    return lines


RENDERERS = {"quantize_overhead": rows_quantize, "eval_overhead": rows_eval, "batched_generation": rows_batched,
             "sweep_rerun": rows_sweep, "sweep_rerun-validation": rows_sweep, "demo_and_tests": rows_demo,
             "tiny_training": rows_tiny_training, "gpu_check": rows_gpu, "sweep_workers": rows_sweep_workers,
             "sweep_workers-demo": rows_sweep_workers}


OPTIONAL = {"sweep_workers-demo"}  # a slice, run when the full sweep is too long for the machine


def render(results_dir: Path = RESULTS_DIR) -> str:
    header = ["benchmark", "result (ratios: lab / reference, medians of n interleaved runs)", "target", "met",
              "model, settings"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    machines = []
    for name, renderer in RENDERERS.items():
        path = results_dir / f"{name}.json"
        if not path.is_file():
            if name not in OPTIONAL:
                lines.append(f"| {name} | not run yet (`python -m benchmarks.{name.split('-')[0]}`) | | | |")
            continue
        data = json.loads(path.read_text())
        args = (data, name) if renderer in (rows_sweep, rows_sweep_workers) else (data,)
        for row in renderer(*args):
            lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |")
        machines.append(f"- `{name}` ({data.get('created', '?')}): {_machine(data)}")
    gpu = results_dir / "gpu_check.json"
    details = gpu_details(json.loads(gpu.read_text())) if gpu.is_file() else []
    return "\n".join(lines + ["", "Machines:", "", *machines, "", *details])


def update_docs(docs: Path = DOCS_FILE, results_dir: Path = RESULTS_DIR) -> None:
    text = docs.read_text() if docs.is_file() else f"# Benchmarks\n\n{BEGIN}\n{END}\n"
    if BEGIN not in text or END not in text:
        raise SystemExit(f"{docs} has no {BEGIN} ... {END} markers")
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    docs.parent.mkdir(parents=True, exist_ok=True)
    docs.write_text(f"{head}{BEGIN}\n{render(results_dir)}\n{END}{tail}")
    print(f"updated {docs}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--print", action="store_true")
    args = parser.parse_args(argv)
    if args.print:
        print(render())
    else:
        update_docs()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
