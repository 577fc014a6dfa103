"""Seeded synthetic tasks in the schemas of the Hub datasets the lab evaluates.

Three tasks, each small enough for a sub-10M-parameter model to learn on a CPU:
  openmath: one-digit additions and subtractions, as expressions or word problems
            (schema of nvidia/OpenMathInstruct-2)
  arc:      four-way multiple choice: largest/smallest number or
            membership in a fixed everyday-category table (schema of allenai/ai2_arc)
  squad:    a short span copied from a short biography of a made-up person
            (schema of rajpurkar/squad)

Eval and dev docs are distinct prompts, and training never sees an eval or dev prompt
(see `generate_splits`).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from tasks.prompts import render_prompt

# Bump by hand when the generated data or the training's semantics change in any way: it
# is part of the cache key and of the release's manifest, and the release test fails
# until the release is rebuilt with it. (A version, not a hash of the sources: a
# refactor that changes no output keeps the release.)
GENERATOR_VERSION = 2

TASKS = ("openmath", "arc", "squad")
LAB_TASK_NAMES = {task: f"boxed_{task}" for task in TASKS}  # tasks/<name>.yaml

FIRST_NAMES = {
    "She": ["Anna", "Mira", "Lena", "Sara", "Nora", "Ella", "Ruth", "Ines", "Maya", "Lucy",
            "Emma", "Iris", "Rosa", "Tara", "Vera", "Zoe"],
    "He": ["Tom", "Ben", "Omar", "Leo", "Sam", "Max", "Ivan", "Paul", "Hugo", "Eric",
           "Jack", "Noah", "Theo", "Adam", "Karl", "Luis"],
}
THINGS = ["apples", "books", "coins", "pencils", "marbles", "stickers", "cards", "shells",
          "stamps", "cookies", "buttons", "candles"]
CATEGORIES = {  # fixed "world knowledge" for the arc task; not seeded on purpose
    "a fruit": ["apple", "banana", "cherry", "grape", "lemon", "mango", "orange", "peach",
                "pear", "plum"],
    "an animal": ["cat", "dog", "horse", "cow", "sheep", "goat", "tiger", "lion", "rabbit",
                  "mouse"],
    "a color": ["red", "blue", "green", "yellow", "purple", "brown", "black", "white",
                "pink", "gray"],
    "a tool": ["hammer", "saw", "drill", "wrench", "shovel", "rake", "chisel", "pliers",
               "axe", "ladder"],
    "a vehicle": ["car", "bus", "truck", "train", "bicycle", "boat", "plane", "tractor",
                  "taxi", "van"],
    "a musical instrument": ["piano", "guitar", "violin", "drum", "flute", "trumpet", "harp",
                             "cello", "banjo", "organ"],
}
JOBS = ["baker", "farmer", "teacher", "doctor", "sailor", "painter", "tailor", "pilot",
        "nurse", "miner", "judge", "singer", "carpenter", "fisher", "chemist", "librarian"]
COLLECTIONS = ["stamps", "coins", "shells", "maps", "clocks", "feathers", "keys", "postcards",
               "rocks", "buttons", "spoons", "masks"]
PETS = ["dog", "cat", "parrot", "horse", "goat", "rabbit", "turtle", "goose"]
SYLLABLES = ["ka", "lo", "mi", "ren", "tor", "vel", "zan", "bri", "dor", "fen", "gal", "hum",
             "is", "jor", "kel", "mar", "nor", "pel", "quin", "ros", "sil", "tam", "ul", "var",
             "wen", "yor", "bek", "dra", "esh", "fal", "gor", "hal"]
CHOICE_LABELS = ["A", "B", "C", "D"]


@dataclass(frozen=True)
class DataSettings:
    """How many docs of each task each split gets (train is per task too)."""

    train_per_task: int
    dev_per_task: int
    eval_per_task: int = 200


def generate_splits(settings: DataSettings, seed: int) -> dict[str, dict[str, list[dict]]]:
    """{"eval"|"dev"|"train": {task: [doc, ...]}}, deterministic for (settings, seed).

    Eval and dev docs are distinct prompts; train docs are drawn from the same
    distribution, repeats allowed, minus every eval/dev prompt (dropping repeats from
    train would starve it of the small templates, e.g. "What is 3 + 5?", and shift it away
    from what is evaluated).
    """
    splits: dict[str, dict[str, list[dict]]] = {"eval": {}, "dev": {}, "train": {}}
    for task in TASKS:
        rng = random.Random(f"{seed}/{task}")
        held_out, prompts = _held_out_docs(task, settings.eval_per_task + settings.dev_per_task,
                                           rng)
        train = []
        while len(train) < settings.train_per_task:
            doc = _MAKE_DOC[task](rng)
            if render_prompt(LAB_TASK_NAMES[task], doc) not in prompts:
                train.append(doc)
        parts = {"eval": held_out[:settings.eval_per_task],
                 "dev": held_out[settings.eval_per_task:], "train": train}
        for split, docs in parts.items():
            splits[split][task] = [_with_id(task, split, i, doc) for i, doc in enumerate(docs)]
    return splits


def answer_text(task: str, doc: dict) -> str:
    """The reference answer string that goes inside \\boxed{}."""
    if task == "openmath":
        return doc["expected_answer"]
    if task == "arc":
        return doc["answerKey"]
    if task == "squad":
        return doc["answers"]["text"][0]
    raise ValueError(f"unknown task {task!r}; choices: {', '.join(TASKS)}")


def assistant_reply(task: str, doc: dict) -> str:
    """What the model is trained to answer: the boxed answer after a few words of lead-in
    (arithmetic: the equation, i.e. the OpenMath solution; multiple choice: the chosen
    option's text). A tiny model learns two short steps far sooner than one long jump."""
    if task == "openmath":
        return doc["generated_solution"]
    if task == "arc":
        chosen = doc["choices"]["text"][doc["choices"]["label"].index(doc["answerKey"])]
        return f"{chosen}: \\boxed{{{doc['answerKey']}}}"
    return "\\boxed{" + answer_text(task, doc) + "}"


def _held_out_docs(task: str, count: int, rng: random.Random) -> tuple[list[dict], set[str]]:
    docs, prompts = [], set()
    for _ in range(50 * count + 1000):
        if len(docs) == count:
            return docs, prompts
        doc = _MAKE_DOC[task](rng)
        prompt = render_prompt(LAB_TASK_NAMES[task], doc)
        if prompt not in prompts:
            prompts.add(prompt)
            docs.append(doc)
    raise ValueError(f"cannot draw {count} distinct {task} docs; ask for fewer")


def _with_id(task: str, split: str, index: int, doc: dict) -> dict:
    if task == "openmath":  # the OpenMathInstruct-2 schema has no id
        return doc
    return {"id": f"tiny-{task}-{split}-{index:06d}", **doc}


# ---- openmath -------------------------------------------------------------------------

# Phrasings of a bare expression. Expressions are half of the openmath prompts, and with
# 16 phrasings per operation there are 3,200 distinct ones, so holding out 1,000 eval and
# 256 dev prompts leaves most of them in training: the held-out set stays distributed as
# the generator (with 4 phrasings, 800 in all, it took 495 of them and train kept 305).
ADDITIONS = ["What is {a} + {b}?", "Calculate {a} + {b}.", "Compute {a} + {b}.",
             "Add {a} and {b}.", "What is the sum of {a} and {b}?", "Find {a} + {b}.",
             "Work out {a} + {b}.", "Evaluate {a} + {b}.", "How much is {a} + {b}?",
             "{a} + {b} = ?", "What do you get when you add {a} and {b}?", "Add {b} to {a}.",
             "Find the sum of {a} and {b}.", "What is {a} plus {b}?", "Solve {a} + {b}.",
             "What number is {a} + {b}?"]
SUBTRACTIONS = ["What is {a} - {b}?", "Calculate {a} - {b}.", "Compute {a} - {b}.",
                "Subtract {b} from {a}.", "What is the difference of {a} and {b}?",
                "Find {a} - {b}.", "Work out {a} - {b}.", "Evaluate {a} - {b}.",
                "How much is {a} - {b}?", "{a} - {b} = ?",
                "What do you get when you take {b} from {a}?", "Take {b} away from {a}.",
                "Find the difference of {a} and {b}.", "What is {a} minus {b}?",
                "Solve {a} - {b}.", "What number is {a} - {b}?"]


def _openmath_doc(rng: random.Random) -> dict:
    pronoun = rng.choice(["She", "He"])
    name = rng.choice(FIRST_NAMES[pronoun])
    things = rng.choice(THINGS)
    if rng.random() < 0.5:
        a, b = rng.randint(0, 9), rng.randint(0, 9)
        op, result = "+", a + b
        problem = rng.choice([
            rng.choice(ADDITIONS).format(a=a, b=b),
            f"{name} has {a} {things} and buys {b} more. How many {things} does {name} have now?",
        ])
    else:
        b = rng.randint(0, 9)
        a = rng.randint(b, b + 9)
        op, result = "-", a - b
        problem = rng.choice([
            rng.choice(SUBTRACTIONS).format(a=a, b=b),
            f"{name} has {a} {things} and gives away {b}. How many {things} are left?",
        ])
    return {
        "problem": problem,
        "generated_solution": f"{a} {op} {b} = \\boxed{{{result}}}",
        "expected_answer": str(result),
        "problem_source": "tiny_synthetic",
    }


# ---- arc ------------------------------------------------------------------------------

def _arc_doc(rng: random.Random) -> dict:
    kind = rng.choice(["largest", "smallest", "member", "not_member"])
    if kind in ("largest", "smallest"):
        options = [str(n) for n in rng.sample(range(1, 10), 4)]
        pick = max if kind == "largest" else min
        correct = str(pick(int(o) for o in options))
        question = f"Which number is the {kind}?"
    else:
        category = rng.choice(list(CATEGORIES))
        others = [w for c, words in CATEGORIES.items() if c != category for w in words]
        if kind == "member":
            correct = rng.choice(CATEGORIES[category])
            options = [correct] + rng.sample(others, 3)
            question = f"Which of these is {category}?"
        else:
            correct = rng.choice(others)
            options = [correct] + rng.sample(CATEGORIES[category], 3)
            question = f"Which of these is not {category}?"
        rng.shuffle(options)
    return {
        "question": question,
        "choices": {"text": options, "label": list(CHOICE_LABELS)},
        "answerKey": CHOICE_LABELS[options.index(correct)],
    }


# ---- squad ----------------------------------------------------------------------------

def _made_up_word(rng: random.Random) -> str:
    return "".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 3))).capitalize()


def _distinct_made_up_words(rng: random.Random, count: int) -> list[str]:
    words: list[str] = []
    while len(words) < count:
        word = _made_up_word(rng)
        if word not in words:
            words.append(word)
    return words


def _squad_doc(rng: random.Random) -> dict:
    pronoun = rng.choice(["She", "He"])
    possessive = "Her" if pronoun == "She" else "His"
    surname, birthplace, new_home, pet_name = _distinct_made_up_words(rng, 4)
    name = f"{rng.choice(FIRST_NAMES[pronoun])} {surname}"
    year, job = str(rng.randint(1900, 1999)), rng.choice(JOBS)
    collection, pet = rng.choice(COLLECTIONS), rng.choice(PETS)
    # (sentence, [(question, answer span)]); the span occurs in its own sentence.
    facts = [
        (f"{name} was born in {birthplace} in {year}.",
         [(f"Where was {name} born?", birthplace),
          (f"In which year was {name} born?", year)]),
        (f"{pronoun} worked as a {job}.", [(f"What did {name} work as?", job)]),
        (f"{pronoun} liked to collect {collection}.",
         [(f"What did {name} like to collect?", collection)]),
        (f"{possessive} {pet} was called {pet_name}.",
         [(f"What was the name of {name}'s {pet}?", pet_name)]),
        (f"Later {pronoun.lower()} moved to {new_home}.",
         [(f"Where did {name} move to?", new_home)]),
    ]
    kept = [facts[0]] + rng.sample(facts[1:], rng.randint(1, 2))
    sentence, questions = rng.choice(kept)
    question, answer = rng.choice(questions)
    context = " ".join(s for s, _ in kept)
    answer_start = context.index(sentence) + sentence.index(answer)
    return {
        "title": name.replace(" ", "_"),
        "context": context,
        "question": question,
        "answers": {"text": [answer], "answer_start": [answer_start]},
    }


_MAKE_DOC = {"openmath": _openmath_doc, "arc": _arc_doc, "squad": _squad_doc}
