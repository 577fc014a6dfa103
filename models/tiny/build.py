"""Build the tiny family into a content-keyed cache folder, atomically.

Layout of one build, `<cache root>/tiny/<profile>-seed<seed>-<settings hash>-<sizes hash>/`:
    tiny-s/ tiny-m/ tiny-l/          HF checkpoints (float32 safetensors, tokenizer, configs)
    data/tiny_{openmath,arc,squad}.jsonl   held-out eval docs in the Hub datasets' schemas
    data/calibration.jsonl           {"text": chat-formatted training-style sample} per line
    data/calibration.txt             the same texts, newlines replaced by spaces, one per line
    data/train_report.json           per size: parameters, steps, time, held-out scores
    build.json                       manifest; written last, so its presence means complete
    data/answers-<size>.jsonl        each size's greedy answer to every held-out prompt
The folder is built as `.partial-<name>` next to it and renamed when complete; a build
that stopped (killed) leaves it, and the next one resumes from it (see `_build_atomically`).
The release in the repository (`release.py`) is one such folder, stored in bfloat16.
"""

from __future__ import annotations

import hashlib
import json
import logging
import multiprocessing
import os
import platform
import shutil
import signal
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing.managers import SyncManager
from pathlib import Path
from queue import Empty

from tqdm.auto import tqdm

from common.machine import cpu_flags
from common.storage import CACHE_ENV, exclusive_lock
from common.storage import cache_root as lab_cache_root
from models.tiny.family import LAYOUT_VERSION, MANIFEST, TinyFamily, write_jsonl
from models.tiny.generator import GENERATOR_VERSION, LAB_TASK_NAMES, TASKS, assistant_reply, generate_splits
from models.tiny.release import file_table, load_release
from models.tiny.settings import IM_END, PROFILES, SIZES, Profile
from tasks.prompts import render_prompt

log = logging.getLogger(__name__)

CALIBRATION_SAMPLES = 256


def cache_root(cache_dir: str | os.PathLike | None = None) -> Path:
    """Where tiny-family builds live: <cache_dir or the lab's cache folder>/tiny."""
    return (Path(cache_dir).expanduser() if cache_dir else lab_cache_root()) / "tiny"


def ensure_built(sizes=None, profile: str = "full", seed: int = 0, cache_dir=None,
                 force: bool = False, use_release: bool = True) -> TinyFamily:
    """The tiny family for these settings, trained now only if no complete build exists.

    A complete build holding more sizes (same profile and seed) is reused as it is. With
    the default settings (profile full, seed 0) and no such build in the cache, the
    release in the repository is used (`use_release`; checked against its manifest).
    """
    sizes = _check_sizes(sizes)
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; choices: {', '.join(PROFILES)}")
    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    root = cache_root(cache_dir)
    name = build_name(profile, sizes, seed)
    if not force and (found := find_build(root, profile, sizes, seed)):
        log.info("tiny family: using %s", found.root)
        return found
    if use_release and not force and (profile, seed) == ("full", 0):
        release = load_release()
        if release is not None and set(sizes) <= set(release.sizes):
            log.info("tiny family: using the release %s", release.root)
            return release
    root.mkdir(parents=True, exist_ok=True)
    with exclusive_lock(root / f".{name}.lock"):
        if not force and (found := find_build(root, profile, sizes, seed)):
            return found  # another process built it while we waited
        _build_atomically(root / name, PROFILES[profile], profile, sizes, seed, fresh=force)
    return TinyFamily(root / name)


def build_name(profile: str, sizes: tuple[str, ...], seed: int) -> str:
    common, per_size = _settings_hashes(profile, sizes, seed)
    return f"{profile}-seed{seed}-{common}-{per_size}"


def find_build(root: Path, profile: str, sizes: tuple[str, ...], seed: int) -> TinyFamily | None:
    """A complete build with these settings and at least these sizes, if any."""
    wanted = PROFILES[profile].settings_for(sizes)["sizes"]
    common, _ = _settings_hashes(profile, sizes, seed)
    for folder in sorted(root.glob(f"{profile}-seed{seed}-{common}-*")):
        manifest = folder / MANIFEST
        if not manifest.is_file():
            continue  # never use a folder without its manifest
        built = json.loads(manifest.read_text())["settings"]["sizes"]
        if all(built.get(size) == config for size, config in wanted.items()):
            return TinyFamily(folder)
    return None


def _check_sizes(sizes) -> tuple[str, ...]:
    if sizes is None:
        return SIZES
    if isinstance(sizes, str):
        sizes = [s for s in sizes.split(",") if s]
    unknown = [s for s in sizes if s not in SIZES]
    if unknown or not sizes:
        raise ValueError(f"unknown size(s) {', '.join(unknown) or '(none)'}; "
                         f"choices: {', '.join(SIZES)}")
    return tuple(s for s in SIZES if s in sizes)  # canonical order, no duplicates


def _settings_hashes(profile: str, sizes: tuple[str, ...], seed: int) -> tuple[str, str]:
    settings = PROFILES[profile].settings_for(sizes)
    common = {"generator_version": GENERATOR_VERSION, "layout_version": LAYOUT_VERSION,
              "seed": seed, **{k: v for k, v in settings.items() if k != "sizes"}}
    return _digest(common)[:12], _digest(settings["sizes"])[:6]


def _digest(value) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()


def _build_atomically(final: Path, profile: Profile, profile_name: str,
                      sizes: tuple[str, ...], seed: int, fresh: bool = False) -> None:
    """Build in `.partial-<name>` next to `final`, then rename it. A build that stops
    before (killed, or an error) leaves that folder behind, and the next build of the
    same settings resumes from it: its data, finished sizes and saved training states
    (`fresh`: start over instead)."""
    partial = final.with_name(f".partial-{final.name}")
    for stale in final.parent.glob(f".tmp-{final.name}-*"):  # left by builds before resuming
        shutil.rmtree(stale, ignore_errors=True)
    if fresh:
        shutil.rmtree(partial, ignore_errors=True)
    _build(partial, final.name, profile, profile_name, sizes, seed)
    if final.exists():  # force, or a folder left without its manifest
        stale = final.with_name(f".old-{final.name}-{os.getpid()}")
        os.rename(final, stale)
        shutil.rmtree(stale)
    os.rename(partial, final)
    log.info("tiny family: built %s", final)


def _build(out: Path, name: str, profile: Profile, profile_name: str,
           sizes: tuple[str, ...], seed: int) -> None:
    import torch

    # Imported here, not at the top: training needs torch and transformers, and importing
    # models.tiny (model sources, calibration, the CLI's `path`) must stay light.
    from models.tiny.tokenizer import train_tokenizer
    from models.tiny.training import TrainJob, encode_examples

    started = time.monotonic()
    work, data = out / ".work", out / "data"
    prepared = work / "prepared"  # written once the data and the tokenizer are complete
    if prepared.is_file():
        log.info("tiny family: resuming the build in %s", out)
    else:
        shutil.rmtree(out, ignore_errors=True)
        work.mkdir(parents=True)
        data.mkdir()
        log.info("tiny family: generating data (seed %d)", seed)
        splits = generate_splits(profile.data, seed)
        for task in TASKS:
            write_jsonl(data / f"tiny_{task}.jsonl", splits["eval"][task])

        log.info("tiny family: training the tokenizer")
        tokenizer = train_tokenizer(tokenizer_corpus(splits["train"]), profile.tokenizer)
        tokenizer.save_pretrained(work / "tokenizer")
        _write_calibration(data, tokenizer, splits["train"])
        torch.save({split: encode_examples(tokenizer, splits[split]) for split in ("train", "dev")},
                   work / "examples.pt")
        torch.save(splits["eval"], work / "eval_docs.pt")
        prepared.write_text("")

    jobs = [TrainJob(size, profile.sizes[size], profile.train.resolved(), seed, work, out / size)
            for size in sizes]
    reports = _train_in_parallel(jobs)
    report = {"profile": profile_name, "seed": seed, "sizes": reports}
    (data / "train_report.json").write_text(json.dumps(report, indent=2) + "\n")
    shutil.rmtree(work)
    manifest = {
        "name": name,
        "profile": profile_name,
        "seed": seed,
        "sizes": list(sizes),
        "dtype": "float32",
        "generator_version": GENERATOR_VERSION,
        "layout_version": LAYOUT_VERSION,
        "settings": profile.settings_for(sizes),
        "build_seconds": round(time.monotonic() - started, 1),  # of the last run, if resumed
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "cpu_flags": cpu_flags(),
        "versions": _library_versions(),
        "files": file_table(out),  # what `python -m models.tiny verify` checks
    }
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")  # last: marks complete


def tokenizer_corpus(train: dict[str, list[dict]]):
    for task, docs in train.items():
        for doc in docs:
            # Special tokens never reach BPE training, so feed the text between them.
            yield "user\n" + render_prompt(LAB_TASK_NAMES[task], doc)
            yield "assistant\n" + assistant_reply(task, doc)


def _write_calibration(data: Path, tokenizer, train: dict[str, list[dict]]) -> None:
    """Training-style samples, chat-formatted with their answers, tasks interleaved."""
    texts = []
    for i in range(CALIBRATION_SAMPLES):
        task = TASKS[i % len(TASKS)]
        doc = train[task][i // len(TASKS)]
        chat = [{"role": "user", "content": render_prompt(LAB_TASK_NAMES[task], doc)},
                {"role": "assistant", "content": assistant_reply(task, doc)}]
        texts.append(tokenizer.apply_chat_template(chat, tokenize=False))
    assert all(text.endswith(IM_END + "\n") for text in texts)
    write_jsonl(data / "calibration.jsonl", [{"text": t} for t in texts])
    (data / "calibration.txt").write_text("".join(" ".join(t.split("\n")) + "\n" for t in texts))


def _train_in_parallel(jobs: list) -> dict[str, dict]:
    """One process per size and one torch thread each, at most one process per core,
    largest size first. Every size plateaus after a similar number of steps, so the
    largest trains longest: on 2 cores it gets one to itself while the smaller sizes
    follow each other on the other (the longest-job-first rule). Starting all three at
    once instead made them share the cores until tiny-s finished, and left tiny-l
    training alone on one core at the end (measured: 16.3 vs 14.0 minutes, identical weights)."""
    from models.tiny.training import train_size  # torch: imported when training (see _build)

    done = {job.size: json.loads(job.report_path.read_text())
            for job in jobs if job.report_path.is_file()}  # by an earlier, killed run
    jobs = [job for job in jobs if job.size not in done]
    if not jobs:
        return {size: done[size] for size in SIZES if size in done}
    jobs, workers = training_schedule(jobs, usable_cores())
    context = multiprocessing.get_context("spawn")
    manager = SyncManager(ctx=context)
    manager.start(initializer=die_with_parent, initargs=(os.getpid(),))
    # A fresh process per size (max_tasks_per_child): a size trains the same whether it
    # runs first or after another.
    with manager, ProcessPoolExecutor(max_workers=workers, mp_context=context,
                                      max_tasks_per_child=1, initializer=die_with_parent,
                                      initargs=(os.getpid(),)) as pool:
        queue = manager.Queue()
        for job in jobs:
            job.progress = queue
        futures = {job.size: pool.submit(train_size, job) for job in jobs}
        try:
            _follow(futures, queue)
        except BaseException:  # Ctrl-C / SIGTERM: stop the training now; a rerun resumes from its saved state
            _stop_workers(pool)
            raise
        reports = {size: done[size] if size in done else futures[size].result()
                   for size in SIZES if size in futures or size in done}
    for size, report in reports.items():
        scores = ", ".join(f"{task} acc {r['accuracy']:.2f} fmt {r['format_compliance']:.2f}"
                           for task, r in report["held_out"].items())
        log.info("tiny family: %s %d params, %d steps, %.0f s: %s", size,
                 report["parameters"], report["steps"], report["train_seconds"], scores)
    return reports


def training_schedule(jobs: list, cores: int) -> tuple[list, int]:
    """The jobs in the order they start (largest size first) and how many run at once."""
    ordered = sorted(jobs, key=lambda job: job.size_config.layer_parameters, reverse=True)
    return ordered, min(len(jobs), cores)


def _follow(futures: dict, queue) -> None:
    """Show each size's progress until every size has finished."""
    status = {size: "waiting" for size in SIZES if size in futures}
    with tqdm(desc="training tiny family", unit="eval") as bar:
        while not all(f.done() for f in futures.values()) or not queue.empty():
            try:
                size, entry = queue.get(timeout=1)
            except Empty:
                continue
            status[size] = f"step {entry['step']} dev {entry['dev_exact_match']:.2f}"
            bar.set_postfix(status, refresh=False)
            bar.update()


def _stop_workers(pool: ProcessPoolExecutor) -> None:
    """Kill the training processes (leaving the pool's `with` would wait for them to finish).
    ProcessPoolExecutor has no public way to do this before Python 3.14 (terminate_workers)."""
    for process in list((pool._processes or {}).values()):
        process.kill()
    pool.shutdown(wait=False, cancel_futures=True)


def usable_cores() -> int:
    """The cores this process may run on (its affinity, e.g. under Slurm or taskset)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def die_with_parent(parent_pid: int) -> None:
    """Initializer of the build's helper processes: the kernel kills them when the build
    process dies (Linux), so a killed build leaves no orphan training on the CPU."""
    if sys.platform.startswith("linux"):
        import ctypes

        PR_SET_PDEATHSIG = 1
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent_pid:  # it died before the line above took effect
        os._exit(1)


def _library_versions() -> dict[str, str]:
    import tokenizers
    import torch
    import transformers

    return {"python": platform.python_version(), "torch": torch.__version__,
            "transformers": transformers.__version__, "tokenizers": tokenizers.__version__}
