"""Render the boxed tasks' prompts outside lm-eval, from the same task YAMLs.

The task YAMLs in `tasks/` are the single source of prompt text: lm-eval reads
them to evaluate, and the tiny family's generator renders them here to build training
data, so a tiny model is trained on exactly the prompts it is evaluated on.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

import jinja2
import yaml

from tasks import TASKS_DIR


class _TaskYamlLoader(yaml.SafeLoader):
    """Reads lm-eval task YAMLs, keeping `!function` tags as plain strings."""


_TaskYamlLoader.add_multi_constructor("!", lambda loader, suffix, node: f"!{suffix}")


@lru_cache(maxsize=None)
def task_config(task: str) -> dict:
    """The task's YAML with its `include:` chain merged (child keys win)."""
    path = TASKS_DIR / f"{task}.yaml"
    if not path.exists():
        choices = sorted(p.stem for p in TASKS_DIR.glob("*.yaml"))
        raise ValueError(f"unknown boxed task {task!r}; choices: {', '.join(choices)}")
    return _load_with_includes(path)


def _load_with_includes(path: Path) -> dict:
    config = yaml.load(path.read_text(), Loader=_TaskYamlLoader) or {}
    parents = config.pop("include", [])
    merged: dict = {}
    for parent in parents if isinstance(parents, list) else [parents]:
        merged.update(_load_with_includes(path.parent / parent))  # an absolute path stays as is
    return {**merged, **config}


def render_prompt(task: str, doc: dict) -> str:
    """The user message lm-eval builds for `doc` (zero-shot, before any chat template).

    With `apply_chat_template=True`, lm-eval sends exactly this string as the single
    user message (see `chat_messages`); without a chat template the context is this
    string alone (the target delimiter only precedes a gold answer, never the prompt).
    """
    return _render_field(task_config(task)["doc_to_text"], doc)


def render_target(task: str, doc: dict) -> str:
    """The gold answer lm-eval derives for `doc` (as a string)."""
    return str(_render_field(task_config(task)["doc_to_target"], doc))


def chat_messages(task: str, doc: dict) -> list[dict[str, str]]:
    """The chat lm-eval 0.4.13 passes to the tokenizer's chat template (zero-shot, no
    system instruction, no description): one user turn holding the rendered prompt."""
    return [{"role": "user", "content": render_prompt(task, doc)}]


def _render_field(template: str, doc: dict) -> str:
    # lm-eval treats a doc_to_* value that names a column as that column's value.
    if template in doc:
        return doc[template]
    return _compiled(template).render(**doc)


@lru_cache(maxsize=64)
def _compiled(template: str) -> jinja2.Template:
    return _JINJA.from_string(template)


def _regex_replace(string: str, pattern: str, repl: str, count: int = 0) -> str:
    return re.sub(pattern, repl, string, count=count)


# The same settings as lm_eval.utils.env, so whitespace comes out identically
# (jinja2's default drops a template's trailing newline; lm-eval keeps it).
_JINJA = jinja2.Environment(
    loader=jinja2.BaseLoader(), undefined=jinja2.StrictUndefined, keep_trailing_newline=True
)
_JINJA.filters["regex_replace"] = _regex_replace
