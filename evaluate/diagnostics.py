"""Comparisons of a variant with its model's baseline: KL divergence, flips, the gate.

KL divergence of next-token distributions is computed on fixed prompts against a
reference saved when the baseline was evaluated. The reference keeps the baseline's
top-k tokens per position plus one bucket for the remaining probability mass, so it
stays small for 150k-token vocabularies; the KL between those coarsened distributions is
a lower bound of the full KL (data-processing inequality) and equals it when k covers
the vocabulary (the tiny family).
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

from common.files import torch_file_problem
from common.storage import replace_atomically
from evaluate.records import mean_and_stderr

log = logging.getLogger(__name__)


def reference_distribution(model, tokenizer, prompts: list[str], *, top_k: int, max_tokens: int) -> list[dict]:
    """Per prompt: the baseline's top-k token ids and log-probs, and the rest's log-mass."""
    import torch

    reference = []
    for logprobs in _next_token_logprobs(model, tokenizer, prompts, max_tokens):
        k = min(top_k, logprobs.shape[-1])
        top = logprobs.topk(k, dim=-1)
        rest = torch.log1p(-top.values.exp().sum(-1).clamp(max=1 - 1e-7))
        reference.append({"ids": top.indices, "logprobs": top.values, "rest": rest})
    return reference


def kl_to_reference(model, tokenizer, prompts: list[str], reference: list[dict], *,
                    max_tokens: int) -> tuple[dict, list[dict]]:
    """KL(baseline || model) per position, averaged per prompt; plus top-1 agreement.
    Returns the metrics over all prompts and one row per prompt (its KL and agreement, in
    the order of `prompts`), which the report pairs across variants."""
    import torch

    per_prompt, agreement = [], []
    for logprobs, ref in zip(_next_token_logprobs(model, tokenizer, prompts, max_tokens), reference):
        q_top = logprobs.gather(-1, ref["ids"])
        q_rest = torch.log1p(-q_top.exp().sum(-1).clamp(max=1 - 1e-7))
        p_top, p_rest = ref["logprobs"], ref["rest"]
        kl = (p_top.exp() * (p_top - q_top)).sum(-1) + p_rest.exp() * (p_rest - q_rest)
        per_prompt.append(float(kl.clamp(min=0).mean()))
        agreement.append(float((logprobs.argmax(-1) == ref["ids"][:, 0]).float().mean()))
    mean, stderr = mean_and_stderr(per_prompt)
    metrics = {"kl_divergence": mean, "kl_divergence_stderr": stderr,
               "top1_agreement": sum(agreement) / len(agreement), "n_prompts": len(per_prompt)}
    return metrics, [{"kl_divergence": kl, "top1_agreement": top1} for kl, top1 in zip(per_prompt, agreement)]


def _next_token_logprobs(model, tokenizer, prompts: list[str], max_tokens: int):
    import torch

    device = next(model.parameters()).device
    with torch.inference_mode():
        for prompt in prompts:
            ids = tokenizer(prompt, return_tensors="pt", add_special_tokens=False).input_ids[:, :max_tokens]
            logits = model(input_ids=ids.to(device)).logits[0].float()
            yield torch.log_softmax(logits, dim=-1).cpu()


def save_reference(path: Path, reference: list[dict]) -> None:
    import torch

    replace_atomically(path, lambda tmp: torch.save(reference, tmp))


def load_reference(path: Path):
    """The cached reference distribution, or None: none yet, or a damaged cache file (named
    in a warning and removed; it is derived, so it is made again)."""
    import torch

    if not path.is_file():
        return None
    problem = torch_file_problem(path)
    if problem is None:
        try:
            return torch.load(path)
        except Exception as error:  # noqa: BLE001 - whatever a damaged pickle raises, the cache is remade
            problem = f"does not load ({type(error).__name__}: {str(error).strip()[:120]})"
    log.warning("the cached KL reference %s %s; computing it again", path, problem)
    path.unlink(missing_ok=True)
    return None


def flips(rows: list[dict], baseline_rows: list[dict]) -> dict:
    """Samples whose correctness changed against the baseline, either way (paired by doc)."""
    base = {row["doc_id"]: bool(row["correct"]) for row in baseline_rows}
    paired = [(base[row["doc_id"]], bool(row["correct"])) for row in rows if row["doc_id"] in base]
    return {
        "paired": len(paired),
        "gained": sum(not b and v for b, v in paired),
        "lost": sum(b and not v for b, v in paired),
    }


def baseline_gate(metrics: dict, baseline_metrics: dict, *, weight_bits: int, model_kind: str,
                  chat_template: bool, min_compliance: float, max_8bit_drop: float) -> dict:
    """Flag records whose numbers say more about the pipeline than about quantization."""
    reasons = []
    compliance = baseline_metrics.get("format_compliance")
    if compliance is not None and compliance < min_compliance:
        hints = []
        if model_kind == "base":
            hints.append("a base model is not instruction-tuned")
        if not chat_template:
            hints.append("no chat template was applied")
        hints.append("check stop sequences and max_gen_toks")
        reasons.append(
            f"baseline format compliance {compliance:.0%} < {min_compliance:.0%} ({'; '.join(hints)})"
        )
    accuracy, base_accuracy = metrics.get("accuracy"), baseline_metrics.get("accuracy")
    if weight_bits == 8 and _is_number(accuracy) and _is_number(base_accuracy):
        drop = base_accuracy - accuracy
        if drop > max_8bit_drop:
            reasons.append(
                f"an 8-bit variant lost {drop * 100:.1f} points (> {max_8bit_drop * 100:.0f}); 8-bit is "
                "normally near-lossless: check the loader, dtype, chat template and stop sequences"
            )
    return {"suspect_pipeline": bool(reasons), "reasons": reasons}


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not math.isnan(value)
