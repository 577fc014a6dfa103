r"""Score one model generation for a boxed-answer task (pure functions, no model).

The boxed tasks (`tasks/boxed_*.yaml`) ask the model to put its final answer in
`\boxed{}`. `score(generation, gold, kind)` turns one raw generation into a `Score`:
``extracted``/``correct`` (strict), ``rescored_answer``/``rescored_correct``/
``rescore_source`` (lenient), ``format_ok``, ``behaviour`` (one of `BEHAVIOURS`),
``repetition_ratio`` and ``n_boxes`` (box occurrences of any form), each defined below.
Everything here is deterministic and depends only on the standard library.

Task kinds
----------
- ``"numeric"``: math, gold like ``68``, ``-3``, ``1/2``, ``0.5`` (or a LaTeX expression).
- ``"letter"``: multiple choice, gold is a choice label (``B``; ARC also uses ``1``-``4``);
  the valid labels are passed as ``letters``.
- ``"span"``: reading comprehension, gold is one span or a list of acceptable spans.

Boxes (`find_boxes`)
--------------------
A box is ``\boxed`` or ``\fbox`` not followed by a letter (``\boxedfoo`` is another macro),
then optional whitespace, then one of three forms:

- ``braced``: ``{...}`` with braces balanced to the matching ``}``. Nested braces count
  (``\boxed{\frac{1}{2}}`` holds ``\frac{1}{2}``); a backslash escapes the next character,
  so ``\{``, ``\}`` and ``\\`` never open or close.
- ``unclosed``: ``{`` with no matching ``}`` before the end of the text. Its content runs
  to the next box command or the end of the text, so a later box is still found
  (``\boxed{12 so \boxed{13}`` is an unclosed box holding ``12 so `` and a braced one).
- ``short``: the LaTeX short form ``\boxed 5`` / ``\boxed5``: the content is the run of
  characters up to whitespace, ``$``, ``{`` or ``}``. LaTeX would box a single token; a
  model writing ``\boxed 68`` means 68, which rescoring uses.

A box is **well-formed** iff it is ``braced`` and its content is not blank. Unclosed and
short boxes, and the empty ``\boxed{}`` (which holds no answer), are **malformed**.
Boxes never overlap: scanning resumes after a braced or short box, so a box nested
inside another box is part of the outer box's content, not a box of its own.

Normalization and equivalence (`normalize`, `is_equivalent`)
------------------------------------------------------------
All kinds first: Unicode NFKC (full-width digits, no-break spaces), the Unicode minus
``−`` becomes ``-``; wrappers are replaced by their content, at any nesting depth:
``\boxed{}``, ``\fbox{}``, ``\text{}``, ``\textbf{}``, ``\textit{}``, ``\mathrm{}``,
``\mathbf{}``, ``\mbox{}``; dollar signs (``$``, ``\$``), math delimiters ``\(``, ``\)``,
``\[``, ``\]`` and markdown ``**`` are removed; whitespace is collapsed and stripped.

- numeric: remove ``\left``/``\right``, LaTeX spacing (``\!``, ``\,``, ``\;``, ``\:``,
  ``\ ``, ``~``), degrees, percent signs, currency signs (``€ £ ¥``), a short leading
  variable (``x =``), thousands separators (``1,000``, ``1{,}000``; a comma is dropped only
  between a digit and exactly three digits), a trailing period, trailing unit words after
  a plain number (``68 dollars``), and every space not between two digits (``1 2`` stays
  two numbers, so it is no number); ``\dfrac``/``\tfrac`` become ``\frac``
  and ``\frac12`` / ``\sqrt3`` gain braces. If the result is a number -- a decimal
  (``0.5``, ``.5``, ``1e3``), ``a/b``, or ``\frac{a}{b}``, each with an optional sign -- it
  is rewritten canonically from its exact rational value: a terminating decimal without
  trailing zeros (``0.5``, ``68``, ``-3``) or else ``p/q`` (``1/3``). So ``1/2``,
  ``\frac{1}{2}``, ``0.50`` all normalize to ``0.5``; ``1,000`` and ``1000`` to ``1000``;
  ``68.`` to ``68``. Anything else (``\frac{\sqrt{3}}{2}``, ``(1,2)``) stays the cleaned
  string. `is_equivalent` compares exact rational values when both sides are numbers
  (no tolerance: ``0.333`` is not ``1/3``), else the normalized strings.
- letter: an optional ``Option``/``Choice``/``Answer`` prefix is dropped; a single label
  character, optionally in ``()``/``[]`` and followed by ``.`` or ``:`` (``B``, ``(B)``,
  ``b.``), or a label with a delimiter and then text (``B. Paris``, ``(B) Paris``,
  ``B: Paris``) normalizes to the upper-cased label. Anything else is upper-cased as is
  (and so matches no gold label).
- span: the official SQuAD v1.1 normalization: lower-case, remove punctuation (ASCII
  ``string.punctuation`` plus every Unicode punctuation character), remove the articles
  ``a``/``an``/``the``, collapse whitespace. Accents are kept.

A gold given as a list is matched if any element matches.

Strict answer (`Score.extracted`, `Score.correct`)
-------------------------------------------------
``extracted`` is the stripped content of the **last** well-formed box (None if there is
none); several boxes are allowed here but fail format compliance. ``correct`` is True iff
``extracted`` is equivalent to the gold (for any kind, regardless of format or length).

Rescored answer (`Score.rescored_answer`, `Score.rescored_correct`, `Score.rescore_source`)
------------------------------------------------------------------------------------------
Rescoring tells knowledge apart from formatting. With a well-formed box it *is* the strict
answer (source ``"box"``), so ``correct`` implies ``rescored_correct``. Without one, the
kind's lenient extractor is tried on each malformed box's content, last box first (source
``"malformed_box"``; an unclosed box contributes only the first line of its content),
then on the whole generation. The extractor returns the first rule that fires:

- letter: ``whole_text`` (the whole text is one valid label: ``B``, ``(b)``, ``C.``);
  ``answer_is`` (last "answer is B", "Answer: (B)", "answer is option B", "**Answer:** B",
  the label cased as in ``letters``); ``parenthesized`` (last ``(B)`` or ``(b)``);
  ``lone_letter`` (exactly one distinct label appears as a standalone token, cased as in
  ``letters``: "B. Paris", "Definitely C!"; "A plant needs C" is ambiguous, gives none).
  Labels outside ``letters`` are never extracted.
- numeric: ``whole_text`` (the text is a number); ``answer_is`` (the last number right
  after "answer", "answer is", "answer:", "answer ="); ``last_number`` (the last number in
  the text: integers, decimals, ``1,000``, ``a/b``, ``\frac{a}{b}``; a minus sign counts
  only when not preceded by a word character or closing bracket, so ``5-3`` gives 3).
- span: ``answer_is`` (the rest of the line after the last "answer is"/"answer:", trailing
  period removed); ``whole_text`` (the first non-blank line of the text).

If nothing fires, ``rescored_answer`` is None, ``rescored_correct`` False and the source
``"none"``.

Format compliance (`Score.format_ok`)
-------------------------------------
True iff all of: exactly one box occurrence of any form, and it is well-formed; the
generation did not hit the token limit (``hit_max_tokens``); and nothing substantive
follows the box: after removing closing tokens (``<|...|>``, ``</s>``, ``<eos>``,
``<end_of_turn>``, ``\end{...}``), the text after the box contains no letter or digit
(so ``$\boxed{42}$.``, ``\[\boxed{42}\]`` and ``**\boxed{42}**`` pass, while
``\boxed{5}. Actually, 6.`` fails). Text *before* the box (reasoning) is allowed.

Repetition (`repetition_ratio`, `is_degenerate`)
------------------------------------------------
Units are whitespace tokens when there are at least ``MIN_WORD_TOKENS`` (20) of them,
else characters (whitespace runs collapsed to one space), so ``121212...`` and unspaced
scripts are covered. The ratio is unique 4-grams / all 4-grams (1.0 with no 4-gram).
A generation is degenerate iff it has at least ``MIN_NGRAMS`` (16) 4-grams and a ratio
below ``DEGENERATE_BELOW`` (0.5).

Behaviour (`Score.behaviour`)
-----------------------------
Exactly one class per generation, the first that applies in this order:

1. ``empty``: nothing but whitespace and closing tokens;
2. ``repetition``: degenerate repetition (whether or not it hit the limit);
3. ``max_tokens``: ``hit_max_tokens`` (ran to the token limit);
4. ``no_box``: no box occurrence of any form;
5. ``malformed_box``: boxes, but none well-formed;
6. ``correct`` / ``wrong_answer``: by ``correct`` (the last well-formed box).

``behaviour`` and ``format_ok`` are separate axes: ``correct`` and ``wrong_answer``
include generations with several boxes or text after the box. `BEHAVIOURS` lists the
classes in display order.
"""

from __future__ import annotations

import re
import string
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

KINDS = ("numeric", "letter", "span")
BEHAVIOURS = (
    "correct",
    "wrong_answer",
    "no_box",
    "malformed_box",
    "max_tokens",
    "repetition",
    "empty",
)
DEFAULT_LETTERS = ("A", "B", "C", "D")

NGRAM = 4
MIN_WORD_TOKENS = 20
MIN_NGRAMS = 16
DEGENERATE_BELOW = 0.5


# --------------------------------------------------------------------------- the score


@dataclass(frozen=True)
class Score:
    """The verdict on one generation; fields are plain values (`dataclasses.asdict`)."""

    extracted: str | None
    correct: bool
    rescored_answer: str | None
    rescored_correct: bool
    rescore_source: str
    format_ok: bool
    behaviour: str
    repetition_ratio: float
    n_boxes: int


def score(
    generation: str,
    gold: str | Sequence[str],
    kind: str,
    *,
    hit_max_tokens: bool = False,
    letters: Sequence[str] = DEFAULT_LETTERS,
) -> Score:
    """Score `generation` against `gold` (one answer or a list of acceptable ones)."""
    _check_kind(kind)
    golds = [gold] if isinstance(gold, str) else list(gold)
    boxes = find_boxes(generation)
    final = _last_well_formed(boxes)
    extracted = final.content.strip() if final else None
    correct = extracted is not None and _matches_any(extracted, golds, kind)
    if final:
        rescored, source = extracted, "box"
    else:
        rescored, source = _lenient_answer(generation, boxes, kind, tuple(letters))
    rescored_correct = rescored is not None and _matches_any(rescored, golds, kind)
    return Score(
        extracted=extracted,
        correct=correct,
        rescored_answer=rescored,
        rescored_correct=rescored_correct,
        rescore_source=source,
        format_ok=_format_ok(generation, boxes, hit_max_tokens),
        behaviour=_behaviour(generation, boxes, correct, hit_max_tokens),
        repetition_ratio=repetition_ratio(generation),
        n_boxes=len(boxes),
    )


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise ValueError(f"unknown answer kind {kind!r}; choices: {', '.join(KINDS)}")


def _matches_any(answer: str, golds: Sequence[str], kind: str) -> bool:
    return any(is_equivalent(answer, g, kind) for g in golds)


def _last_well_formed(boxes: Sequence[Box]) -> Box | None:
    return next((b for b in reversed(boxes) if b.well_formed), None)


def _format_ok(generation: str, boxes: Sequence[Box], hit_max_tokens: bool) -> bool:
    if hit_max_tokens or len(boxes) != 1 or not boxes[0].well_formed:
        return False
    tail = _strip_closing_tokens(generation[boxes[0].end :])
    return not any(ch.isalnum() for ch in tail)


def _behaviour(
    generation: str, boxes: Sequence[Box], correct: bool, hit_max_tokens: bool
) -> str:
    if not _strip_closing_tokens(generation).strip():
        return "empty"
    if is_degenerate(generation):
        return "repetition"
    if hit_max_tokens:
        return "max_tokens"
    if not boxes:
        return "no_box"
    if _last_well_formed(boxes) is None:
        return "malformed_box"
    return "correct" if correct else "wrong_answer"


_CLOSING_TOKEN = re.compile(r"<\|[^<>|]*\|>|</s>|<eos>|<end_of_turn>|\\end\{[^{}]*\}")


def _strip_closing_tokens(text: str) -> str:
    return _CLOSING_TOKEN.sub("", text)


# --------------------------------------------------------------------------- boxes


@dataclass(frozen=True)
class Box:
    r"""One `\boxed`/`\fbox` occurrence; `text[start:end]` is the whole box."""

    command: str  # "boxed" or "fbox"
    content: str  # raw; unclosed: up to the next box command or the end; short: the token
    start: int  # offset of the backslash
    end: int  # offset just past the closing brace / token / text
    form: str  # "braced", "unclosed" or "short"

    @property
    def closed(self) -> bool:
        return self.form == "braced"

    @property
    def well_formed(self) -> bool:
        return self.form == "braced" and bool(self.content.strip())


_BOX_COMMAND = re.compile(r"\\(boxed|fbox)(?![A-Za-z])\s*")
_SHORT_TOKEN = re.compile(r"[^\s${}]*")


def find_boxes(text: str) -> list[Box]:
    r"""Every `\boxed`/`\fbox` occurrence in `text`, in order (see the module docstring)."""
    commands = list(_BOX_COMMAND.finditer(text))
    closing = _closing_braces(text)
    boxes: list[Box] = []
    covered_until = 0  # end of the last braced or short box: commands before it are inside
    for i, match in enumerate(commands):
        if match.start() < covered_until:
            continue
        next_command = commands[i + 1].start() if i + 1 < len(commands) else len(text)
        box = _read_box(text, match, closing, next_command)
        boxes.append(box)
        if box.form != "unclosed":
            covered_until = box.end
    return boxes


def _read_box(text: str, match: re.Match, closing: dict[int, int], next_command: int) -> Box:
    command, start, body = match.group(1), match.start(), match.end()
    if text.startswith("{", body):
        close = closing.get(body)
        if close is None:
            return Box(command, text[body + 1 : next_command], start, next_command, "unclosed")
        return Box(command, text[body + 1 : close], start, close + 1, "braced")
    token = _SHORT_TOKEN.match(text, body)
    return Box(command, token.group(), start, token.end(), "short")


_BRACE_OR_ESCAPE = re.compile(r"\\.|[{}]", re.DOTALL)


def _closing_braces(text: str) -> dict[int, int]:
    """Offset of each matched `{` -> offset of its `}`; a backslash escapes a character."""
    pairs: dict[int, int] = {}
    open_at: list[int] = []
    for m in _BRACE_OR_ESCAPE.finditer(text):
        if m.group() == "{":
            open_at.append(m.start())
        elif m.group() == "}" and open_at:
            pairs[open_at.pop()] = m.start()
    return pairs


# --------------------------------------------------------------------------- normalization


def normalize(answer: str, kind: str) -> str:
    """The canonical form of `answer` for `kind` (see the module docstring)."""
    _check_kind(kind)
    text = _clean_common(answer)
    if kind == "numeric":
        return _normalize_numeric(text)
    if kind == "letter":
        return _normalize_letter(text)
    return _normalize_span(text)


def is_equivalent(answer: str, gold: str, kind: str) -> bool:
    """Whether `answer` means `gold`: exact rational values for numbers, else strings."""
    _check_kind(kind)
    if kind == "numeric":
        a, g = parse_number(answer), parse_number(gold)
        if a is not None and g is not None:
            return a == g
    return normalize(answer, kind) == normalize(gold, kind)


def parse_number(answer: str) -> Fraction | None:
    r"""The exact value of a numeric answer (`0.5`, `1/2`, `\frac{1}{2}`, `1,000`), or None."""
    return _parse_cleaned_number(_clean_numeric(_clean_common(answer)))


_WRAPPER_OPEN = re.compile(r"\\(?:boxed|fbox|text|textbf|textit|mathrm|mathbf|mbox)\s*(?=\{)")
_MATH_DELIMITER = re.compile(r"\\[()\[\]]|\\?\$|\*\*")


def _clean_common(answer: str) -> str:
    text = unicodedata.normalize("NFKC", answer).replace("\u2212", "-")
    text = _MATH_DELIMITER.sub("", _unwrap(text))
    return " ".join(text.split())


def _unwrap(text: str) -> str:
    r"""`text` with each `\text{...}`-like wrapper replaced by its content (any nesting)."""
    closing = _closing_braces(text)
    cuts: list[tuple[int, int]] = []
    for m in _WRAPPER_OPEN.finditer(text):
        close = closing.get(m.end())
        if close is not None:
            cuts += [(m.start(), m.end() + 1), (close, close + 1)]
    kept, pos = [], 0
    for start, end in sorted(cuts):
        kept.append(text[pos:start])
        pos = end
    return "".join(kept) + text[pos:]


# numeric ---------------------------------------------------------------------

_LATEX_NOISE = re.compile(r"\\left|\\right|\\[!,;: ]|~|\^\s*\{?\\circ\}?|°|\\?%|[€£¥]")
_LEADING_VARIABLE = re.compile(r"^[A-Za-z](?:_\{?\w+\}?)?\s*=\s*")
_THOUSANDS_COMMA = re.compile(r"(?<=\d)(?:\{,\}|,)(?=\d{3}(?!\d))")
_TRAILING_UNITS = re.compile(r"^([-+]?[\d.]+)\s+[A-Za-z]+(?:\s+[A-Za-z]+)*$")
_SPACE_NOT_BETWEEN_DIGITS = re.compile(r"(?<!\d) +| +(?!\d)")
_SHORT_FRAC = re.compile(r"\\frac(\d)(\d)")
_SHORT_SQRT = re.compile(r"\\sqrt(\w)")

_DEC = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?"
_DECIMAL_NUMBER = re.compile(rf"({_DEC})")
_SLASH_NUMBER = re.compile(rf"({_DEC})/({_DEC})")
_FRAC_NUMBER = re.compile(rf"([-+]?)\\frac\{{({_DEC})\}}\{{({_DEC})\}}")


def _normalize_numeric(text: str) -> str:
    cleaned = _clean_numeric(text)
    value = _parse_cleaned_number(cleaned)
    return cleaned if value is None else _format_number(value)


def _clean_numeric(text: str) -> str:
    text = _LATEX_NOISE.sub("", text).replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac")
    text = _LEADING_VARIABLE.sub("", text.strip())
    text = _THOUSANDS_COMMA.sub("", text).rstrip(". ")
    text = _TRAILING_UNITS.sub(r"\1", text)
    text = _SHORT_FRAC.sub(r"\\frac{\1}{\2}", _SPACE_NOT_BETWEEN_DIGITS.sub("", text))
    return _SHORT_SQRT.sub(r"\\sqrt{\1}", text)


def _parse_cleaned_number(text: str) -> Fraction | None:
    if m := _DECIMAL_NUMBER.fullmatch(text):
        return Fraction(m.group(1))
    if m := _SLASH_NUMBER.fullmatch(text):
        return _ratio("", m.group(1), m.group(2))
    if m := _FRAC_NUMBER.fullmatch(text):
        return _ratio(m.group(1), m.group(2), m.group(3))
    return None


def _ratio(sign: str, numerator: str, denominator: str) -> Fraction | None:
    den = Fraction(denominator)
    if den == 0:
        return None
    value = Fraction(numerator) / den
    return -value if sign == "-" else value


def _format_number(value: Fraction) -> str:
    """A terminating decimal without trailing zeros (`0.5`, `-3`), else `p/q`."""
    den = value.denominator
    twos = fives = 0
    while den % 2 == 0:
        den, twos = den // 2, twos + 1
    while den % 5 == 0:
        den, fives = den // 5, fives + 1
    if den != 1:
        return f"{value.numerator}/{value.denominator}"
    digits = max(twos, fives)
    scaled = abs(value.numerator) * 10**digits // value.denominator
    whole, frac = divmod(scaled, 10**digits)
    sign = "-" if value < 0 else ""
    if digits == 0:
        return f"{sign}{whole}"
    return f"{sign}{whole}.{frac:0{digits}d}".rstrip("0").rstrip(".")


# letter ----------------------------------------------------------------------

_LETTER_PREFIX = re.compile(r"^(?:option|choice|answer)\b\s*:?\s*", re.IGNORECASE)
_LONE_LABEL = re.compile(r"^[(\[]?([A-Za-z\d])[)\]]?[.:]?$")
_LABEL_WITH_TEXT = re.compile(r"^[(\[]?([A-Za-z\d])(?:[)\]]|[.:])\s+\S.*$")


def _normalize_letter(text: str) -> str:
    text = _LETTER_PREFIX.sub("", text)
    m = _LONE_LABEL.match(text) or _LABEL_WITH_TEXT.match(text)
    return m.group(1).upper() if m else text.upper()


# span ------------------------------------------------------------------------

_ARTICLES = re.compile(r"\b(?:a|an|the)\b")


def _normalize_span(text: str) -> str:
    """SQuAD v1.1's normalize_answer, with Unicode punctuation removed as well."""
    text = "".join(ch for ch in text.lower() if not _is_punctuation(ch))
    return " ".join(_ARTICLES.sub(" ", text).split())


def _is_punctuation(ch: str) -> bool:
    return ch in string.punctuation or unicodedata.category(ch).startswith("P")


# --------------------------------------------------------------------------- rescoring


def _lenient_answer(
    generation: str, boxes: Sequence[Box], kind: str, letters: tuple[str, ...]
) -> tuple[str | None, str]:
    """(answer, source) from malformed boxes (last first), then the whole generation."""
    for box in reversed(boxes):
        content = box.content
        if box.form == "unclosed":
            content = content.strip().split("\n", 1)[0]
        answer, _ = _extract(content, kind, letters)
        if answer is not None:
            return answer, "malformed_box"
    return _extract(generation, kind, letters)


def _extract(text: str, kind: str, letters: tuple[str, ...]) -> tuple[str | None, str]:
    if kind == "letter":
        return _extract_letter(text, letters)
    if kind == "numeric":
        return _extract_number(text)
    return _extract_span(text)


def _extract_letter(text: str, letters: tuple[str, ...]) -> tuple[str | None, str]:
    if (m := _LONE_LABEL.match(_clean_common(text))) and m.group(1).upper() in letters:
        return m.group(1).upper(), "whole_text"
    alternatives = "|".join(re.escape(x) for x in sorted(letters, key=len, reverse=True))
    answer_is = re.compile(
        rf"(?i:\banswer\b)(?:\s+(?i:is))?\s*:?\s*(?:(?i:option|choice)\s+)?"
        rf"[*(\[]*\s*({alternatives})(?!\w)"
    )
    if found := answer_is.findall(text):
        return found[-1], "answer_is"
    parenthesized = re.compile(rf"\(\s*({alternatives})\s*\)", re.IGNORECASE)
    if found := parenthesized.findall(text):
        return found[-1].upper(), "parenthesized"
    standalone = set(re.findall(rf"(?<![\w\\])({alternatives})(?!\w)", text))
    if len(standalone) == 1:
        return standalone.pop(), "lone_letter"
    return None, "none"


_NUMBER_IN_TEXT = (
    r"-?\s*\\[dt]?frac\{[^{}]*\}\{[^{}]*\}"
    r"|(?<![\w.)}])-?(?:\d{1,3}(?:,\d{3}(?!\d))+|\d+)(?:\.\d+)?(?:\s*/\s*\d+(?:\.\d+)?)?"
    r"|(?<![\w)}])-?\.\d+"
)
_NUMBER_ANYWHERE = re.compile(_NUMBER_IN_TEXT)
_NUMBER_AFTER_ANSWER = re.compile(
    rf"(?i:\banswer\b)[^\w\n]{{0,6}}?(?:(?i:is|was)\b)?[^\w\n]{{0,6}}?({_NUMBER_IN_TEXT})"
)


def _extract_number(text: str) -> tuple[str | None, str]:
    if parse_number(text) is not None:
        return text.strip(), "whole_text"
    if found := _NUMBER_AFTER_ANSWER.findall(text):
        return found[-1], "answer_is"
    if found := _NUMBER_ANYWHERE.findall(text):
        return found[-1], "last_number"
    return None, "none"


_SPAN_AFTER_ANSWER = re.compile(r"(?i:\banswer\b)(?:\s+(?i:is)\s*:?|\s*:)[ \t]*([^\n]+)")


def _extract_span(text: str) -> tuple[str | None, str]:
    if found := _SPAN_AFTER_ANSWER.findall(text):
        span = found[-1].strip().rstrip(".").strip()
        if span:
            return span, "answer_is"
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return (lines[0], "whole_text") if lines else (None, "none")


# --------------------------------------------------------------------------- repetition


def repetition_ratio(text: str) -> float:
    """Unique 4-grams / all 4-grams over words (>= 20 of them) or else characters."""
    grams = _ngrams(text)
    return len(set(grams)) / len(grams) if grams else 1.0


def is_degenerate(text: str) -> bool:
    """At least 16 4-grams, fewer than half of them unique."""
    grams = _ngrams(text)
    return len(grams) >= MIN_NGRAMS and len(set(grams)) / len(grams) < DEGENERATE_BELOW


def _ngrams(text: str) -> list[tuple[str, ...]]:
    words = text.split()
    units = words if len(words) >= MIN_WORD_TOKENS else list(" ".join(words))
    return [tuple(units[i : i + NGRAM]) for i in range(len(units) - NGRAM + 1)]
