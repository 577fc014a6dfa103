"""Train one size of the tiny family: Qwen3 from scratch, answer-only loss, one CPU thread.

`train_size` runs in its own process (the build trains sizes in parallel). The learning
rate decays once the dev score stops improving or a step cap is reached (see
`TrainSettings`), and the best dev checkpoint is kept. The dev score is greedy exact
match, computed cheaply by teacher forcing: an answer is right when every answer token
is the argmax given the prompt and the answer tokens before it. Matrix multiplies run in
bfloat16 where the CPU has it natively (`TrainSettings.matmul_dtype`).
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterator

import torch
import torch.nn.functional as F
from transformers import (AutoModelForCausalLM, AutoTokenizer, GenerationConfig,
                          Qwen3Config, Qwen3ForCausalLM)

from tasks.prompts import render_prompt
from models.tiny.evaluation import evaluate_tasks
from models.tiny.family import write_jsonl
from models.tiny.generator import LAB_TASK_NAMES, assistant_reply
from models.tiny.settings import SizeConfig, TrainSettings
from models.tiny.tokenizer import END_OF_TEXT, IM_END, chat_prompt

Example = tuple[list[int], int]  # (prompt + answer token ids, prompt length)


def encode_examples(tokenizer, docs_by_task: dict[str, list[dict]]) -> dict[str, list[Example]]:
    """Token ids as an evaluator builds them: the chat prompt tokenized alone, then the
    reply tokenized alone and closed with <|im_end|>."""
    encoded = {}
    for task, docs in docs_by_task.items():
        prompts = [chat_prompt(tokenizer, render_prompt(LAB_TASK_NAMES[task], d)) for d in docs]
        replies = [assistant_reply(task, d) + IM_END for d in docs]
        prompt_ids = tokenizer(prompts, add_special_tokens=False)["input_ids"]
        reply_ids = tokenizer(replies, add_special_tokens=False)["input_ids"]
        encoded[task] = [(p + r, len(p)) for p, r in zip(prompt_ids, reply_ids)]
    return encoded


@dataclass
class TrainJob:
    size: str
    size_config: SizeConfig
    train: TrainSettings
    seed: int
    work_dir: Path  # holds tokenizer/ and examples.pt from the parent
    out_dir: Path  # the checkpoint folder to write
    progress: Any = None  # a queue that gets (size, dev history entry) after each eval

    @property
    def state_path(self) -> Path:
        """The saved training state of this size (see `fit`), in the build's work folder."""
        return self.work_dir / f"{self.size}.state.pt"

    @property
    def report_path(self) -> Path:
        """Written once this size is trained, saved and evaluated: a resumed build skips it."""
        return self.work_dir / f"{self.size}.report.json"


def train_size(job: TrainJob) -> dict:
    """Train, save the best dev checkpoint to job.out_dir, evaluate it; return its report."""
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    started, started_cpu = time.monotonic(), time.process_time()
    tokenizer = AutoTokenizer.from_pretrained(job.work_dir / "tokenizer")
    examples = torch.load(job.work_dir / "examples.pt")
    model = new_model(job.size_config, tokenizer, job.seed)
    # CPU flash attention's backward is 5x slower in bfloat16 than in float32 (measured);
    # eager attention is not, and these sequences are short.
    model.set_attn_implementation("eager")
    best_state, history, earlier = fit(model, examples["train"], examples["dev"], job)
    model.load_state_dict(best_state)
    save_checkpoint(model, tokenizer, job.out_dir)
    train_seconds = time.monotonic() - started
    train_cpu_seconds = time.process_time() - started_cpu  # wall time minus waiting for a core

    reloaded = AutoModelForCausalLM.from_pretrained(job.out_dir)  # score what was saved
    eval_docs = torch.load(job.work_dir / "eval_docs.pt")
    held_out, answers = evaluate_tasks(reloaded, tokenizer, eval_docs, job.train.max_new_tokens)
    write_jsonl(job.out_dir.parent / "data" / f"answers-{job.size}.jsonl", answers)
    report = {
        "parameters": sum(p.numel() for p in model.parameters()),
        "config": vars(job.size_config),
        "steps": history[-1]["step"],
        "best_step": max(reversed(history), key=_checkpoint_rank)["step"],  # ties: the later
        # Over all runs of a resumed build (the steps redone after its last saved state count).
        "train_seconds": round(earlier["train_seconds"] + train_seconds, 1),
        "train_cpu_seconds": round(earlier["train_cpu_seconds"] + train_cpu_seconds, 1),
        "eval_seconds": round(time.monotonic() - started - train_seconds, 1),
        "resumed_from_steps": earlier["resumed_from_steps"],
        "held_out": held_out,
        "dev_history": history,
    }
    _write_atomically(job.report_path, lambda path: path.write_text(json.dumps(report)))
    job.state_path.unlink(missing_ok=True)
    return report


def new_model(size: SizeConfig, tokenizer, seed: int) -> Qwen3ForCausalLM:
    eos_id = tokenizer.convert_tokens_to_ids(END_OF_TEXT)
    config = Qwen3Config(
        vocab_size=_round_up(len(tokenizer), 128),
        hidden_size=size.hidden_size,
        intermediate_size=size.intermediate_size,
        num_hidden_layers=size.num_hidden_layers,
        num_attention_heads=size.num_attention_heads,
        num_key_value_heads=size.num_key_value_heads,
        head_dim=size.head_dim,
        max_position_embeddings=512,
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
        tie_word_embeddings=True,  # as in Qwen3-0.6B
        bos_token_id=None,
        eos_token_id=eos_id,
        pad_token_id=eos_id,
        dtype="float32",
    )
    torch.manual_seed(seed)
    return Qwen3ForCausalLM(config)


def fit(model, train: dict[str, list[Example]], dev: dict[str, list[Example]],
        job: TrainJob) -> tuple[dict, list[dict], dict]:
    """The training loop; returns the best dev state dict, the dev history and the time
    spent in earlier runs of a resumed build.

    A step takes `batch_size` examples of every task. Within a task all prompts start
    with the same tokens (chat header and instruction), which run once per batch.

    Every `checkpoint_every` steps the whole training state goes to `job.state_path`:
    model, optimizer, schedule, history, best checkpoint and torch's RNG state; the data
    position is the step (the batch order is replayed from the seed). Saving only reads
    the state, so a build that is never killed trains exactly as without it; one resumed
    from the file continues bit-identically.
    """
    settings, peak_lr = job.train, job.size_config.learning_rate
    prefixes = task_prefixes(train, dev)
    dev_batches = {task: [_collate(dev[task][i:i + 128], prefixes[task])
                          for i in range(0, len(dev[task]), 128)] for task in sorted(dev)}
    optimizer = new_optimizer(model, peak_lr, settings)
    schedule = PlateauSchedule(settings, peak_lr)
    history: list[dict] = []
    best_state, best_rank = None, None
    step, parent = 0, os.getppid()
    earlier = {"train_seconds": 0.0, "train_cpu_seconds": 0.0, "resumed_from_steps": []}
    saved = _load_training_state(job)
    if saved is not None:
        step, history, best_state, best_rank = (saved["step"], saved["history"],
                                                saved["best_state"], tuple(saved["best_rank"]))
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        vars(schedule).update(saved["schedule"])
        torch.set_rng_state(saved["rng"])
        earlier = {**saved["earlier"],
                   "resumed_from_steps": saved["earlier"]["resumed_from_steps"] + [step]}
    started, started_cpu = time.monotonic(), time.process_time()
    batches = training_batches(train, prefixes, settings.batch_size, job.seed, skip_steps=step)
    while not schedule.finished(step):
        if os.getppid() != parent:  # the build was killed: do not train on as an orphan
            os._exit(1)  # not an exception: the pool worker would catch it and take the next size
        model.train()
        for group in optimizer.param_groups:
            group["lr"] = schedule.learning_rate(step)
        loss = train_step(model, optimizer, [next(b) for b in batches], settings.matmul_dtype)
        step += 1
        if step % settings.eval_every == 0 or schedule.finished(step):
            with matmul_precision(settings.matmul_dtype):
                scores = _dev_scores(model, dev_batches)
            entry = {"step": step, "train_loss": round(loss.item(), 4), **scores}
            history.append(entry)
            schedule.observe(step, entry["dev_exact_match"])
            if best_rank is None or _checkpoint_rank(entry) >= best_rank:
                best_rank = _checkpoint_rank(entry)
                best_state = copy.deepcopy(model.state_dict())
            if job.progress is not None:
                job.progress.put((job.size, entry))
            if step % settings.checkpoint_every == 0 and not schedule.finished(step):
                spent = {"train_seconds": earlier["train_seconds"] + time.monotonic() - started,
                         "train_cpu_seconds": (earlier["train_cpu_seconds"]
                                               + time.process_time() - started_cpu),
                         "resumed_from_steps": earlier["resumed_from_steps"]}
                state = {"job": _job_identity(job), "step": step, "history": history,
                         "best_state": best_state, "best_rank": best_rank,
                         "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                         "schedule": dict(vars(schedule), settings=None, peak_lr=None),
                         "rng": torch.get_rng_state(), "earlier": spent}
                _write_atomically(job.state_path, lambda path: torch.save(state, path))
    return best_state, history, earlier


def _job_identity(job: TrainJob) -> dict:
    """What a saved training state must match to be resumed."""
    return {"size": job.size, "size_config": asdict(job.size_config),
            "train": asdict(job.train), "seed": job.seed}


def _load_training_state(job: TrainJob) -> dict | None:
    """The state saved by an earlier run of this job, if any (another job's: ignored)."""
    if not job.state_path.is_file():
        return None
    saved = torch.load(job.state_path, weights_only=False)
    if saved["job"] != _job_identity(job):
        return None
    saved["schedule"] = {k: v for k, v in saved["schedule"].items()
                         if k not in ("settings", "peak_lr")}
    return saved


def _write_atomically(path: Path, write) -> None:
    """`write(temporary path)`, then rename it to `path`: a kill leaves the old file or the new."""
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    write(temporary)
    os.replace(temporary, path)


def task_prefixes(train: dict[str, list[Example]],
                  dev: dict[str, list[Example]]) -> dict[str, list[int]]:
    """Per task, the prompt tokens that every train and dev example starts with."""
    return {task: _shared_prefix(train[task] + dev[task]) for task in sorted(train)}


def training_batches(train: dict[str, list[Example]], prefixes: dict[str, list[int]],
                     batch_size: int, seed: int, skip_steps: int = 0) -> list[Iterator[dict]]:
    """Endless shuffled batches of every task (tasks in sorted order), drawn from one
    generator seeded with `seed`, starting after the batches of `skip_steps` steps (a step
    draws one batch of each task in turn, as `fit` does)."""
    generator = torch.Generator().manual_seed(seed)
    tasks = sorted(train)
    orders = [_shuffled_batch_indices(train[task], batch_size, generator) for task in tasks]
    for _ in range(skip_steps):
        for order in orders:
            next(order)
    return [_collated(train[task], prefixes[task], order) for task, order in zip(tasks, orders)]


def _collated(examples: list[Example], prefix: list[int],
              order: Iterator[list[int]]) -> Iterator[dict]:
    for indices in order:
        yield _collate([examples[i] for i in indices], prefix)


def new_optimizer(model, peak_lr: float, settings: TrainSettings) -> torch.optim.Optimizer:
    return torch.optim.AdamW(model.parameters(), lr=peak_lr, betas=(0.9, 0.98),
                             weight_decay=settings.weight_decay)


def train_step(model, optimizer, task_batches: list[dict], matmul_dtype: str) -> torch.Tensor:
    """One optimizer step on a batch of every task; returns the mean answer-token loss."""
    summed, count = 0.0, 0
    with matmul_precision(matmul_dtype):  # one context: the weights are cast once a step
        for batch in task_batches:
            task_sum, task_count, _ = _answer_loss(model, batch)
            summed, count = summed + task_sum, count + task_count
    loss = summed / count
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    return loss


def matmul_precision(dtype: str):
    """Autocast to bfloat16, or nothing for float32 (TrainSettings.resolved() picks one)."""
    if dtype == "float32":
        return contextlib.nullcontext()
    if dtype == "bfloat16":
        return torch.autocast("cpu", dtype=torch.bfloat16)
    raise ValueError(f"matmul_dtype {dtype!r} is not resolved; choices: bfloat16, float32")


def _checkpoint_rank(entry: dict) -> tuple[float, float]:
    return entry["dev_exact_match"], -entry["dev_loss"]


class PlateauSchedule:
    """Learning rate: warmup, constant until the dev score plateaus, then linear decay.
    The plateau test is `TrainSettings`'s: window means of the dev score."""

    def __init__(self, settings: TrainSettings, peak_lr: float):
        self.settings, self.peak_lr = settings, peak_lr
        self.scores: list[float] = []
        self.decay_start: int | None = None
        self.decay_steps = 0

    def learning_rate(self, step: int) -> float:
        if step < self.settings.warmup_steps:
            return self.peak_lr * (step + 1) / self.settings.warmup_steps
        if self.decay_start is None:
            return self.peak_lr
        return self.peak_lr * max(0.0, 1 - (step - self.decay_start) / self.decay_steps)

    def observe(self, step: int, dev_score: float) -> None:
        if self.decay_start is not None:
            return  # a gain while decaying does not restart the constant phase
        self.scores.append(dev_score)
        if self.plateaued(step) or step >= self.settings.max_stable_steps:
            self.decay_start = step
            self.decay_steps = max(self.settings.min_decay_steps,
                                   int(self.settings.decay_fraction * step))

    def plateaued(self, step: int) -> bool:
        window = self.settings.plateau_window
        if step < self.settings.min_plateau_steps or len(self.scores) < 2 * window:
            return False
        recent = sum(self.scores[-window:]) / window
        before = sum(self.scores[-2 * window:-window]) / window
        return recent - before < self.settings.min_gain

    def finished(self, step: int) -> bool:
        return self.decay_start is not None and step >= self.decay_start + self.decay_steps


@torch.no_grad()
def _dev_scores(model, dev_batches: dict[str, list[dict]]) -> dict:
    model.eval()
    scores, summed, count = {}, 0.0, 0
    for task, batches in dev_batches.items():
        exact = []
        for batch in batches:
            task_sum, task_count, all_tokens_right = _answer_loss(model, batch)
            summed, count = summed + task_sum.item(), count + task_count
            exact += all_tokens_right.tolist()
        scores[f"dev_{task}"] = round(sum(exact) / len(exact), 4)
    return {
        "dev_exact_match": round(sum(scores.values()) / len(scores), 4),  # macro over tasks
        "dev_loss": round(summed / count, 4),
        **scores,
    }


def _answer_loss(model, batch: dict) -> tuple[torch.Tensor, int, torch.Tensor]:
    """Summed loss over answer tokens, their number, and per example whether the argmax
    got all of them right.

    The shared prefix runs once and its keys/values are repeated for every example. The
    LM head runs only where a label is. No attention mask is needed: padding is on the
    right, so causal attention never lets a real token see it.
    """
    rows = batch["inputs"].shape[0]
    cache = model.model(input_ids=batch["prefix"][None], use_cache=True).past_key_values
    cache.batch_repeat_interleave(rows)
    hidden = model.model(input_ids=batch["inputs"], past_key_values=cache).last_hidden_state
    mask = batch["answer_mask"]
    logits = model.lm_head(hidden[mask])
    targets = batch["targets"][mask]
    summed = F.cross_entropy(logits, targets, reduction="sum")
    wrong = (logits.argmax(-1) != targets).float()
    wrong_per_example = torch.zeros(rows).index_add_(0, mask.nonzero()[:, 0], wrong)
    return summed, targets.numel(), wrong_per_example == 0


def _shared_prefix(examples: list[Example]) -> list[int]:
    """The longest token prefix that every prompt strictly extends."""
    first = examples[0][0]
    length = min(prompt_length for _, prompt_length in examples) - 1
    for ids, _ in examples:
        while ids[:length] != first[:length]:
            length -= 1
    return first[:length]


def _collate(examples: list[Example], prefix: list[int]) -> dict:
    """Right-padded inputs after the shared prefix, next-token targets, and the mask of
    the positions that predict the reply."""
    skip = len(prefix)
    width = max(len(ids) for ids, _ in examples) - 1 - skip
    inputs = torch.zeros(len(examples), width, dtype=torch.long)
    targets = torch.zeros(len(examples), width, dtype=torch.long)
    answer_mask = torch.zeros(len(examples), width, dtype=torch.bool)
    for row, (ids, prompt_length) in enumerate(examples):
        n = len(ids) - 1 - skip
        inputs[row, :n] = torch.tensor(ids[skip:-1])
        targets[row, :n] = torch.tensor(ids[skip + 1:])
        answer_mask[row, prompt_length - 1 - skip:n] = True
    return {"prefix": torch.tensor(prefix), "inputs": inputs, "targets": targets,
            "answer_mask": answer_mask}


def _shuffled_batch_indices(examples: list[Example], batch_size: int,
                            generator: torch.Generator) -> Iterator[list[int]]:
    """Endless epochs of batches (indices into `examples`). Each window of 16 batches is
    sorted by length before it is cut into batches (less padding), and the batches are
    then shuffled."""
    window = min(16, len(examples) // batch_size) * batch_size
    while True:
        order = torch.randperm(len(examples), generator=generator).tolist()
        for start in range(0, len(order) - window + 1, window):
            chunk = sorted(order[start:start + window], key=lambda i: len(examples[i][0]))
            cut = [chunk[i:i + batch_size] for i in range(0, window, batch_size)]
            for b in torch.randperm(len(cut), generator=generator).tolist():
                yield cut[b]


def save_checkpoint(model, tokenizer, out_dir: Path) -> None:
    """An ordinary HF checkpoint: safetensors, config, tokenizer, generation config."""
    model.generation_config = GenerationConfig(
        eos_token_id=[tokenizer.convert_tokens_to_ids(IM_END),
                      tokenizer.convert_tokens_to_ids(END_OF_TEXT)],
        pad_token_id=tokenizer.convert_tokens_to_ids(END_OF_TEXT),
        do_sample=False,
    )
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)


def _round_up(n: int, multiple: int) -> int:
    return -(-n // multiple) * multiple
