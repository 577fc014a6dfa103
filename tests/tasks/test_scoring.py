r"""tasks.scoring on crafted generations: boxes, normalization, rescoring, behaviours."""

from __future__ import annotations

import dataclasses

import pytest

from tasks.scoring import (
    BEHAVIOURS,
    Score,
    find_boxes,
    is_degenerate,
    is_equivalent,
    normalize,
    parse_number,
    repetition_ratio,
    score,
)

# --------------------------------------------------------------------------- find_boxes


@pytest.mark.parametrize(
    "text, expected",
    [
        (r"so \boxed{42}.", [("42", "braced")]),
        (r"\boxed{\frac{1}{2}}", [(r"\frac{1}{2}", "braced")]),
        (r"\boxed{\sqrt{\frac{a}{b^{2}}}} done", [(r"\sqrt{\frac{a}{b^{2}}}", "braced")]),
        (r"\boxed {7}", [("7", "braced")]),
        ("\\boxed\n{7}", [("7", "braced")]),
        (r"\fbox{C}", [("C", "braced")]),
        (r"first \boxed{3}, then \fbox{5}", [("3", "braced"), ("5", "braced")]),
        (r"\boxed{\{1, 2\}}", [(r"\{1, 2\}", "braced")]),
        (r"\boxed{\left\{ x \right.} end", [(r"\left\{ x \right.", "braced")]),
        (r"\boxed{x \} y}", [(r"x \} y", "braced")]),
        (r"\boxed 5 apples", [("5", "short")]),
        (r"$\boxed5$", [("5", "short")]),
        (r"\boxed{12", [("12", "unclosed")]),
        (r"\boxed{12 so \boxed{13}", [("12 so ", "unclosed"), ("13", "braced")]),
        (r"\boxed{\boxed{5}", [("", "unclosed"), ("5", "braced")]),
        (r"\boxed{\boxed{5}}", [(r"\boxed{5}", "braced")]),
        (r"\boxed{}", [("", "braced")]),
        (r"\boxedanswer{3} and \fboxes", []),
        ("no box at all", []),
        ("", []),
    ],
    ids=[
        "simple",
        "nested-frac",
        "deeply-nested",
        "space-before-brace",
        "newline-before-brace",
        "fbox",
        "several",
        "escaped-braces",
        "escaped-open-brace",
        "escaped-close-brace",
        "short-form",
        "short-form-no-space",
        "unclosed",
        "unclosed-then-closed",
        "unclosed-around-closed",
        "nested-box",
        "empty-braces",
        "other-macros",
        "none",
        "empty-text",
    ],
)
def test_find_boxes(text, expected):
    assert [(b.content, b.form) for b in find_boxes(text)] == expected


def test_box_offsets_cover_the_whole_box():
    text = r"Thus $\boxed{\frac{1}{2}}$ and \fbox {3}."
    boxes = find_boxes(text)
    assert [text[b.start : b.end] for b in boxes] == [r"\boxed{\frac{1}{2}}", r"\fbox {3}"]
    assert [b.command for b in boxes] == ["boxed", "fbox"]


@pytest.mark.parametrize(
    "text, well_formed",
    [(r"\boxed{4}", True), (r"\boxed{ }", False), (r"\boxed 4", False), (r"\boxed{4", False)],
    ids=["braced", "blank", "short", "unclosed"],
)
def test_well_formed(text, well_formed):
    (box,) = find_boxes(text)
    assert box.well_formed is well_formed


def test_deep_nesting_is_one_box():
    depth = 2000
    text = "\\boxed{" * depth + "5" + "}" * depth
    (box,) = find_boxes(text)
    assert (box.end, normalize(box.content, "numeric")) == (len(text), "5")


def test_unclosed_box_runs_to_the_end():
    text = "\\boxed{12\nand then"
    (box,) = find_boxes(text)
    assert (box.content, box.end, box.closed) == ("12\nand then", len(text), False)


# --------------------------------------------------------------------------- normalize


@pytest.mark.parametrize(
    "answer, expected",
    [
        ("68", "68"),
        ("68.", "68"),
        ("68.0", "68"),
        (" 68 ", "68"),
        ("$68$", "68"),
        (r"\$68", "68"),
        ("1,000", "1000"),
        ("1{,}000", "1000"),
        ("1,234,567.5", "1234567.5"),
        ("-3", "-3"),
        ("\u22123", "-3"),
        ("1/2", "0.5"),
        (r"\frac{1}{2}", "0.5"),
        (r"\dfrac12", "0.5"),
        (r"-\frac{3}{4}", "-0.75"),
        (r"\frac{-3}{4}", "-0.75"),
        ("0.50", "0.5"),
        (".5", "0.5"),
        ("1/3", "1/3"),
        ("2/6", "1/3"),
        ("1e3", "1000"),
        (r"50\%", "50"),
        (r"90^\circ", "90"),
        (r"\text{68}", "68"),
        (r"68 \text{ dollars}", "68"),
        ("x = 5", "5"),
        ("\uff14\uff12", "42"),
        (r"\frac{\sqrt3}{2}", r"\frac{\sqrt{3}}{2}"),
        ("(1, 2)", "(1,2)"),
        ("1 2", "1 2"),
        ("1/0", "1/0"),
    ],
    ids=lambda v: repr(v),
)
def test_normalize_numeric(answer, expected):
    assert normalize(answer, "numeric") == expected


@pytest.mark.parametrize(
    "answer, gold, equivalent",
    [
        ("1/2", "0.5", True),
        (r"\frac{1}{2}", "0.5", True),
        (r"\frac{1}{2}", "1/2", True),
        ("1,000", "1000", True),
        ("68.", "68", True),
        ("68", "68.00", True),
        (r"\dfrac{\sqrt{3}}{2}", r"\frac{\sqrt3}{2}", True),
        ("0.333", "1/3", False),
        ("12", "1 2", False),
        ("1,00", "100", False),
        ("-3", "3", False),
        ("68", "86", False),
    ],
    ids=lambda v: repr(v),
)
def test_is_equivalent_numeric(answer, gold, equivalent):
    assert is_equivalent(answer, gold, "numeric") is equivalent


@pytest.mark.parametrize(
    "answer, value",
    [("0.5", "1/2"), ("1,000", "1000"), (r"-\frac{6}{4}", "-3/2"), ("abc", None), ("", None)],
    ids=["decimal", "thousands", "frac", "text", "empty"],
)
def test_parse_number(answer, value):
    from fractions import Fraction

    assert parse_number(answer) == (None if value is None else Fraction(value))


@pytest.mark.parametrize(
    "answer, expected",
    [
        ("B", "B"),
        ("b", "B"),
        ("(B)", "B"),
        ("[B]", "B"),
        ("B.", "B"),
        ("B. Paris", "B"),
        ("(B) Paris", "B"),
        ("B: Paris", "B"),
        (r"\text{B}", "B"),
        ("**B**", "B"),
        ("Option B", "B"),
        ("3", "3"),
        ("Paris", "PARIS"),
        ("Brussels.", "BRUSSELS."),
    ],
    ids=lambda v: repr(v),
)
def test_normalize_letter(answer, expected):
    assert normalize(answer, "letter") == expected


@pytest.mark.parametrize(
    "answer, expected",
    [
        ("The Denver Broncos.", "denver broncos"),
        ("  an   Apple ", "apple"),
        ("Saint-Denis!", "saintdenis"),
        ("\u201cParis\u201d", "paris"),
        ("ZÜRICH", "zürich"),
        (r"\text{the Louvre}", "louvre"),
        ("theater", "theater"),
    ],
    ids=lambda v: repr(v),
)
def test_normalize_span(answer, expected):
    assert normalize(answer, "span") == expected


def test_unknown_kind_is_rejected():
    with pytest.raises(ValueError, match="unknown answer kind"):
        normalize("1", "boolean")
    with pytest.raises(ValueError, match="unknown answer kind"):
        score(r"\boxed{1}", "1", "boolean")


# --------------------------------------------------------------------------- score

# One crafted generation per case, scored against (gold, kind), expecting
# (extracted, correct, rescored_correct, format_ok, behaviour).


def case(case_id, generation, gold, kind, expected, *, hit_max_tokens=False):
    return pytest.param(generation, gold, kind, hit_max_tokens, expected, id=case_id)


CASES = [
    # numeric
    case("numeric-clean", r"So $\boxed{42}$.", "42", "numeric",
         ("42", True, True, True, "correct")),
    case("numeric-wrong", r"\boxed{41}", "42", "numeric",
         ("41", False, False, True, "wrong_answer")),
    case("nested-braces", r"\boxed{\frac{1}{2}}", "0.5", "numeric",
         (r"\frac{1}{2}", True, True, True, "correct")),
    case("space-before-brace", r"\boxed {68}", "68", "numeric",
         ("68", True, True, True, "correct")),
    case("fbox", r"\fbox{68}", "68", "numeric",
         ("68", True, True, True, "correct")),
    case("several-boxes-last-wins", r"\boxed{3} no wait \boxed{5}", "5", "numeric",
         ("5", True, True, False, "correct")),
    case("several-boxes-last-wrong", r"\boxed{5} no wait \boxed{3}", "5", "numeric",
         ("3", False, False, False, "wrong_answer")),
    case("answer-after-box", r"\boxed{5}. Actually it is 6.", "5", "numeric",
         ("5", True, True, False, "correct")),
    case("display-math-and-eos", "\\[\\boxed{5}\\]\n<|im_end|>", "5", "numeric",
         ("5", True, True, True, "correct")),
    case("thousands", r"\boxed{1,000}", "1000", "numeric",
         ("1,000", True, True, True, "correct")),
    case("trailing-period-in-box", r"\boxed{68.}", "68", "numeric",
         ("68.", True, True, True, "correct")),
    case("unicode-digits", "答案是 \\boxed{４２}。", "42", "numeric",
         ("４２", True, True, True, "correct")),
    case("no-box-last-number", "She has 3 + 65 = 68 apples.", "68", "numeric",
         (None, False, True, False, "no_box")),
    case("no-box-answer-is", "The answer is 68, since 70 - 2.", "68", "numeric",
         (None, False, True, False, "no_box")),
    case("no-box-no-number", "I do not know.", "68", "numeric",
         (None, False, False, False, "no_box")),
    case("short-form-box", r"so \boxed 68", "68", "numeric",
         (None, False, True, False, "malformed_box")),
    case("unclosed-box", "\\boxed{68\nso", "68", "numeric",
         (None, False, True, False, "malformed_box")),
    case("empty-box", r"The answer is \boxed{}", "68", "numeric",
         (None, False, False, False, "malformed_box")),
    case("runaway-with-box", r"\boxed{68} and then I kept going", "68", "numeric",
         ("68", True, True, False, "max_tokens"), hit_max_tokens=True),
    case("runaway-ending-in-box", r"so \boxed{68}", "68", "numeric",
         ("68", True, True, False, "max_tokens"), hit_max_tokens=True),
    case("runaway-no-box", "Let me think step by step about 68 and", "68", "numeric",
         (None, False, True, False, "max_tokens"), hit_max_tokens=True),
    case("empty", "", "68", "numeric",
         (None, False, False, False, "empty")),
    case("whitespace-only", " \n\t<|im_end|>", "68", "numeric",
         (None, False, False, False, "empty")),
    case("repetition-words", "the " * 60, "68", "numeric",
         (None, False, False, False, "repetition"), hit_max_tokens=True),
    case("repetition-numbers", "12 " * 60, "12", "numeric",
         (None, False, True, False, "repetition")),
    case("repetition-chars", "ab" * 100, "68", "numeric",
         (None, False, False, False, "repetition")),
    # letter
    case("letter-clean", r"The answer is \boxed{B}.", "B", "letter",
         ("B", True, True, True, "correct")),
    case("letter-lowercase", r"\boxed{b}", "B", "letter",
         ("b", True, True, True, "correct")),
    case("letter-parenthesized", r"\boxed{(B)}", "B", "letter",
         ("(B)", True, True, True, "correct")),
    case("letter-with-text", r"\boxed{B. Paris}", "B", "letter",
         ("B. Paris", True, True, True, "correct")),
    case("letter-text-only-in-box", r"\boxed{Paris}", "B", "letter",
         ("Paris", False, False, True, "wrong_answer")),
    case("letter-wrong", r"\boxed{C}", "B", "letter",
         ("C", False, False, True, "wrong_answer")),
    case("letter-no-box-answer-is", "The correct answer is (B).", "B", "letter",
         (None, False, True, False, "no_box")),
    case("letter-no-box-answer-colon", "Answer: **B**", "B", "letter",
         (None, False, True, False, "no_box")),
    case("letter-no-box-lone", "B", "B", "letter",
         (None, False, True, False, "no_box")),
    case("letter-no-box-ambiguous", "A plant needs C", "B", "letter",
         (None, False, False, False, "no_box")),
    case("letter-short-form", r"\boxed B", "B", "letter",
         (None, False, True, False, "malformed_box")),
    # span
    case("span-clean", r"\boxed{Denver Broncos}", ["Denver Broncos", "The Broncos"], "span",
         ("Denver Broncos", True, True, True, "correct")),
    case("span-articles-case", r"\boxed{the denver broncos.}", ["Denver Broncos"], "span",
         ("the denver broncos.", True, True, True, "correct")),
    case("span-second-gold", r"\boxed{Broncos}", ["Denver Broncos", "Broncos"], "span",
         ("Broncos", True, True, True, "correct")),
    case("span-text-wrapper", r"$\boxed{\text{Denver Broncos}}$", "Denver Broncos", "span",
         (r"\text{Denver Broncos}", True, True, True, "correct")),
    case("span-wrong", r"\boxed{Carolina Panthers}", ["Denver Broncos"], "span",
         ("Carolina Panthers", False, False, True, "wrong_answer")),
    case("span-unicode", r"\boxed{Zürich}", ["zürich"], "span",
         ("Zürich", True, True, True, "correct")),
    case("span-no-box-bare", "Denver Broncos", ["Denver Broncos"], "span",
         (None, False, True, False, "no_box")),
    case("span-no-box-answer-is", "The answer is the Denver Broncos.", ["Denver Broncos"], "span",
         (None, False, True, False, "no_box")),
]  # fmt: skip


@pytest.mark.parametrize("generation, gold, kind, hit_max, expected", CASES)
def test_score(generation, gold, kind, hit_max, expected):
    result = score(generation, gold, kind, hit_max_tokens=hit_max)
    assert (
        result.extracted,
        result.correct,
        result.rescored_correct,
        result.format_ok,
        result.behaviour,
    ) == expected


@pytest.mark.parametrize("generation, gold, kind, hit_max, expected", CASES)
def test_score_invariants(generation, gold, kind, hit_max, expected):
    result = score(generation, gold, kind, hit_max_tokens=hit_max)
    assert result.behaviour in BEHAVIOURS
    assert not result.correct or result.rescored_correct
    if result.behaviour == "correct":
        assert result.correct and not hit_max
    if result.format_ok:
        (box,) = find_boxes(generation)
        assert box.well_formed and not hit_max and result.extracted == box.content.strip()
    if result.rescore_source == "box":
        assert result.rescored_answer == result.extracted is not None


@pytest.mark.parametrize(
    "generation, format_ok",
    [
        (r"Reasoning first. So $\boxed{42}$.", True),
        (r"**\boxed{42}**", True),
        (r"\boxed{42}</s>", True),
        (r"\begin{align} x = \boxed{42} \end{align}", True),
        ("\\boxed{42} \U0001f389", True),
        (r"\boxed{42} apples", False),
        ("\\boxed{42}\n\nWait, let me check.", False),
        (r"\boxed{42} or 43", False),
        (r"\boxed{42} \boxed{42}", False),
        (r"\boxed{42} \boxed 42", False),
    ],
    ids=lambda v: repr(v),
)
def test_format_ok_tail(generation, format_ok):
    assert score(generation, "42", "numeric").format_ok is format_ok


@pytest.mark.parametrize(
    "generation, answer, source",
    [
        ("The correct answer is (B).", "B", "answer_is"),
        ("Answer: **C**", "C", "answer_is"),
        ("the answer is option D", "D", "answer_is"),
        ("I pick (c) because it fits", "C", "parenthesized"),
        ("(b)", "B", "whole_text"),
        ("B. Paris", "B", "lone_letter"),
        ("Definitely C!", "C", "lone_letter"),
        ("A. one\nB. two\nC. three", None, "none"),
        ("the answer is a bird", None, "none"),
        (r"\boxed{C", "C", "malformed_box"),
    ],
    ids=lambda v: repr(v),
)
def test_letter_rescoring(generation, answer, source):
    result = score(generation, "B", "letter")
    assert (result.rescored_answer, result.rescore_source) == (answer, source)


@pytest.mark.parametrize(
    "generation, answer, source",
    [
        ("68", "68", "whole_text"),
        ("So 70 - 2 = 68 apples.", "68", "last_number"),
        ("x = -3", "x = -3", "whole_text"),
        ("so x = -3 here", "-3", "last_number"),
        ("compute 5-3", "3", "last_number"),
        ("In total 1,000 dollars", "1,000", "last_number"),
        (r"It is $\frac{1}{2}$ now", r"\frac{1}{2}", "last_number"),
        ("The answer is 12; check: 3 * 4", "12", "answer_is"),
        (r"Final answer: $-\frac{3}{4}$", r"-\frac{3}{4}", "answer_is"),
        ("no digits here", None, "none"),
    ],
    ids=lambda v: repr(v),
)
def test_numeric_rescoring(generation, answer, source):
    result = score(generation, "0", "numeric")
    assert (result.rescored_answer, result.rescore_source) == (answer, source)


def test_letters_can_be_digit_labels():
    result = score("The answer is 3.", "3", "letter", letters=("1", "2", "3", "4"))
    assert (result.rescored_answer, result.rescored_correct) == ("3", True)
    assert score(r"\boxed{3}", "3", "letter", letters=("1", "2", "3", "4")).correct


def test_label_outside_letters_is_not_rescored():
    result = score("The answer is E.", "E", "letter")
    assert (result.rescored_answer, result.rescored_correct) == (None, False)
    assert score("The answer is E.", "E", "letter", letters="ABCDE").rescored_correct


def test_score_is_a_frozen_plain_record():
    result = score(r"\boxed{42}", "42", "numeric")
    assert isinstance(result, Score)
    assert dataclasses.asdict(result) == {
        "extracted": "42",
        "correct": True,
        "rescored_answer": "42",
        "rescored_correct": True,
        "rescore_source": "box",
        "format_ok": True,
        "behaviour": "correct",
        "repetition_ratio": 1.0,
        "n_boxes": 1,
    }
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.correct = False  # type: ignore[misc]


def test_behaviours_cover_every_crafted_case():
    seen = {score(*c.values[:3], hit_max_tokens=c.values[3]).behaviour for c in CASES}
    assert seen == set(BEHAVIOURS)
    assert BEHAVIOURS[:2] == ("correct", "wrong_answer") and len(set(BEHAVIOURS)) == 7


# --------------------------------------------------------------------------- repetition


@pytest.mark.parametrize(
    "text, degenerate",
    [
        ("the " * 60, True),
        ("12 " * 60, True),
        ("ab" * 100, True),
        ("答案" * 50, True),
        ("I think, therefore I am. " * 10, True),
        (
            (
                "First add the apples: 3 + 65 = 68. Then subtract the two eaten ones, "
                "which leaves 66. Each basket holds 11, so there are 6 baskets. \\boxed{6}"
            ),
            False,
        ),
        ("The quick brown fox jumps over the lazy dog near the river bank today.", False),
        ("12 12 12 12", False),
        ("", False),
    ],
    ids=[
        "the-the",
        "12-12",
        "chars",
        "unicode-chars",
        "sentence-loop",
        "reasoning",
        "short-prose",
        "too-short-to-tell",
        "empty",
    ],
)
def test_is_degenerate(text, degenerate):
    assert is_degenerate(text) is degenerate


def test_repetition_ratio_values():
    assert repetition_ratio("") == 1.0
    assert repetition_ratio("one two three four five six seven eight") == 1.0
    assert repetition_ratio("x " * 40) == pytest.approx(1 / 37)
    assert 0.0 < repetition_ratio("the " * 60) < 0.5


def test_score_reports_repetition_ratio():
    assert score("12 " * 60, "12", "numeric").repetition_ratio == pytest.approx(1 / 57)
