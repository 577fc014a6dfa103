"""The lab's evaluation tasks as lm-eval task YAMLs (this folder is an lm-eval include
path), their prompts rendered outside lm-eval (`tasks.prompts`, also used to train the tiny
family on exactly the prompts it is evaluated on), and the scoring of boxed answers
(`tasks.scoring`)."""

from pathlib import Path

TASKS_DIR = Path(__file__).resolve().parent
