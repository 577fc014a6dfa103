"""Greedy generation and boxed-answer scoring, as a chat-template evaluator sees a model."""

from __future__ import annotations

import torch

from tasks.prompts import render_prompt
from tasks.scoring import score
from models.tiny.generator import LAB_TASK_NAMES, answer_text
from models.tiny.tokenizer import END_OF_TEXT, IM_END, chat_prompt

# How the lab's scorer (tasks/scoring.py) reads each task's answer.
ANSWER_KINDS = {"openmath": "numeric", "arc": "letter", "squad": "span"}


def reference_answers(task: str, doc: dict) -> list[str]:
    if task == "squad":
        return list(doc["answers"]["text"])
    return [answer_text(task, doc)]


@torch.no_grad()
def generate_greedy(model, tokenizer, user_messages: list[str], max_new_tokens: int,
                    batch_size: int = 64) -> list[tuple[str, bool]]:
    """(generation, stopped) per message: chat-formatted, left-padded, greedy."""
    tokenizer.padding_side = "left"
    results = []
    for start in range(0, len(user_messages), batch_size):
        prompts = [chat_prompt(tokenizer, m) for m in user_messages[start:start + batch_size]]
        encoded = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
        output = model.generate(**encoded, max_new_tokens=max_new_tokens, do_sample=False)
        new_tokens = output[:, encoded["input_ids"].shape[1]:]
        for text in tokenizer.batch_decode(new_tokens, skip_special_tokens=False):
            results.append(_cut_at_end_of_turn(text))
    return results


def _cut_at_end_of_turn(text: str) -> tuple[str, bool]:
    ends = [i for i in (text.find(IM_END), text.find(END_OF_TEXT)) if i >= 0]
    return (text[:min(ends)], True) if ends else (text, False)


def held_out_answers(model, tokenizer, docs_by_task: dict[str, list[dict]],
                     max_new_tokens: int, limit: int | None = None) -> list[dict]:
    """The greedy answer to the first `limit` (default: every) held-out prompt of each
    task, in batches of 64 in order: {"task", "index", "generation", "stopped"} each."""
    model.eval()
    answers = []
    for task, docs in docs_by_task.items():
        messages = [render_prompt(LAB_TASK_NAMES[task], doc) for doc in docs[:limit]]
        generations = generate_greedy(model, tokenizer, messages, max_new_tokens)
        answers += [{"task": task, "index": i, "generation": text, "stopped": stopped}
                    for i, (text, stopped) in enumerate(generations)]
    return answers


def score_answers(docs_by_task: dict[str, list[dict]], answers: list[dict]) -> dict[str, dict]:
    """Strict accuracy and format compliance per task, by the lab's own scorer, plus one
    example generation."""
    report = {}
    for task, docs in docs_by_task.items():
        mine = [a for a in answers if a["task"] == task]
        scores = [score(a["generation"], reference_answers(task, docs[a["index"]]),
                        ANSWER_KINDS[task], hit_max_tokens=not a["stopped"]) for a in mine]
        report[task] = {
            "n": len(mine),
            "accuracy": round(sum(s.correct for s in scores) / len(mine), 4),
            "format_compliance": round(sum(s.format_ok for s in scores) / len(mine), 4),
            "example": {"gold": reference_answers(task, docs[0]), "generation": mine[0]["generation"]},
        }
    return report


def evaluate_tasks(model, tokenizer, docs_by_task: dict[str, list[dict]],
                   max_new_tokens: int) -> tuple[dict[str, dict], list[dict]]:
    """`score_answers` of `held_out_answers`, and the answers."""
    answers = held_out_answers(model, tokenizer, docs_by_task, max_new_tokens)
    return score_answers(docs_by_task, answers), answers
