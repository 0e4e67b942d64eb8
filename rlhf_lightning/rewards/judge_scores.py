"""Reading a judge's verdicts: rubric templates, numbers and labels in answer text, expected values
over choice-token probabilities, and per-answer scores from pairwise judgments. Pure Python.

The judge reward (:mod:`rlhf_lightning.rewards.judge`) asks a language model to grade answers
("LLM-as-a-judge", Zheng et al. 2023, MT-Bench; RLAIF, Bai et al. 2022 / Lee et al. 2023) and
turns its verdicts into numbers here:

- a **number** in ``[low, high]`` is normalised to ``(x − low) / (high − low) ∈ [0, 1]``; a number
  outside the range is unreadable (not clipped: "11/10" is a judge off its rubric);
- a **label** among ``choices`` is mapped to its value; the answer must be the label alone, or
  hold exactly one of the labels as a word (case-sensitive; two different labels: unreadable);
- with an optional regex ``pattern``, its first group is read instead of the whole answer;
- **choice-token probabilities** ``p_l`` (local models): the verdict is the expected value
  ``Σ_l p_l v_l / Σ_l p_l`` over the labels, renormalised over the labels' probability mass
  (G-Eval, Liu et al. 2023, §2.3, weights scores by their token probabilities the same way).

Pairwise judgments (which of two answers is better; verdict 1 = the first, 0 = the second) become
one score per answer in :func:`win_rates` and :func:`reference_scores`.
"""

from __future__ import annotations

import math
import re
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Optional

#: the index that stands for a sample's reference answer in pairwise verdict keys
REFERENCE = -1

_NUMBER = re.compile(r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?")


def template_fields(template: str) -> list[str]:
    """The ``{field}`` names of a ``str.format`` template, in order, each once.

    Raises ``ValueError`` for a malformed template (an unmatched brace), a positional field
    (``{}``, ``{0}``), or a field with an attribute, index, conversion or format spec — a rubric
    uses plain ``{name}`` fields; literal braces are written ``{{`` and ``}}``.
    """
    names: list[str] = []
    for _, name, spec, conversion in string.Formatter().parse(template):
        if name is None:
            continue
        if not name or name.isdigit():
            raise ValueError("has a positional field {}; name the field, e.g. {completion}")
        if not name.isidentifier() or spec or conversion:
            shown = name + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "")
            raise ValueError(f"has a field {{{shown}}}; only plain {{name}} fields are filled "
                             "(write a literal brace as {{ or }})")
        if name not in names:
            names.append(name)
    return names


@dataclass(frozen=True)
class Verdict:
    """How a verdict is read from answer text: a number in ``scale`` or a label among ``choices``."""

    scale: Optional[tuple[float, float]] = None
    choices: Optional[Mapping[str, float]] = None
    pattern: Optional[str] = None

    def __post_init__(self) -> None:
        if (self.scale is None) == (self.choices is None):
            raise ValueError("give exactly one of scale and choices")

    def describe(self) -> str:
        if self.scale is not None:
            return f"a number in [{self.scale[0]:g}, {self.scale[1]:g}]"
        return "one of the labels " + ", ".join(repr(label) for label in self.choices)

    def read(self, answer: str) -> Optional[float]:
        """The verdict in ``answer`` (normalised number, or the label's value), or None if unreadable."""
        text = answer
        if self.pattern is not None:
            match = re.search(self.pattern, answer, flags=re.DOTALL)
            if match is None:
                return None
            text = match.group(1) if match.re.groups else match.group(0)
            if text is None:
                return None
        return self._number(text) if self.scale is not None else self._label(text)

    def _number(self, text: str) -> Optional[float]:
        match = _NUMBER.search(text)
        if match is None:
            return None
        value = float(match.group(0))
        low, high = self.scale
        if not math.isfinite(value) or not low <= value <= high:
            return None
        return (value - low) / (high - low)

    def _label(self, text: str) -> Optional[float]:
        stripped = text.strip().strip(".!*\"'`()[]").strip()
        if stripped in self.choices:
            return float(self.choices[stripped])
        found = {label for label in self.choices
                 if re.search(rf"(?<!\w){re.escape(label)}(?!\w)", text)}
        if len(found) != 1:
            return None
        return float(self.choices[found.pop()])


def expected_choice(probabilities: Mapping[str, float], choices: Mapping[str, float]) -> tuple[float, float]:
    """``(Σ_l p_l v_l / Σ_l p_l, Σ_l p_l)``: the expected value of the labels' values under their
    probabilities renormalised over the labels, and the labels' total probability mass.

    ``probabilities[l]``: the probability of label ``l``'s token(s) as the judge's next token.
    A zero mass (no label has any probability) gives ``(nan, 0.0)``: the caller's unreadable case.
    """
    mass = sum(probabilities[label] for label in choices)
    if not mass > 0:
        return math.nan, 0.0
    return sum(probabilities[label] * value for label, value in choices.items()) / mass, mass


def group_by_prompt(prompts: Sequence[str]) -> list[list[int]]:
    """Sample indices grouped by identical prompt text, groups in order of first appearance."""
    groups: dict[str, list[int]] = {}
    for i, prompt in enumerate(prompts):
        groups.setdefault(prompt, []).append(i)
    return list(groups.values())


def round_robin(group: Sequence[int], both_orders: bool) -> list[tuple[int, int]]:
    """The ordered pairs ``(first, second)`` a group's answers are judged in: every unordered pair
    ``i < j`` as ``(i, j)``, and as ``(j, i)`` too when ``both_orders``; ``K(K−1)`` or ``K(K−1)/2``."""
    pairs = [(group[a], group[b]) for a in range(len(group)) for b in range(a + 1, len(group))]
    if both_orders:
        pairs += [(j, i) for i, j in pairs]
    return pairs


def win_rates(group: Sequence[int], verdicts: Mapping[tuple[int, int], float]) -> dict[int, float]:
    """Each answer's mean probability of beating the others in its group.

    ``verdicts[(i, j)] ∈ [0, 1]``: the judge's preference for ``i`` shown first over ``j`` shown
    second. The preference of ``i`` over ``j`` is ``p_ij = ½ (v(i, j) + 1 − v(j, i))`` when both
    orders were judged — a judge that always favours the first position by ``δ`` adds ``+δ`` to
    ``v(i, j)`` and ``+δ`` to ``v(j, i)``, which cancel — else ``v(i, j)`` or ``1 − v(j, i)``.
    Score of ``i``: ``s_i = (1 / (K − 1)) Σ_{j ≠ i} p_ij`` (so ``Σ_i s_i = K / 2``).

    In a complete round robin the Bradley–Terry maximum-likelihood strengths rank the answers in the
    order of their total wins (Zermelo 1929; Ford 1957), so win rates give the same ranking without
    an iterative fit.
    """
    if len(group) < 2:
        raise ValueError("a group needs at least two answers")
    scores = {}
    for i in group:
        total = 0.0
        for j in group:
            if j != i:
                total += preference(i, j, verdicts)
        scores[i] = total / (len(group) - 1)
    return scores


def preference(i: int, j: int, verdicts: Mapping[tuple[int, int], float]) -> float:
    """``p_ij``, the preference of answer ``i`` over ``j`` from the verdicts of either or both orders."""
    forward, backward = verdicts.get((i, j)), verdicts.get((j, i))
    if forward is not None and backward is not None:
        return 0.5 * (forward + 1.0 - backward)
    if forward is not None:
        return forward
    if backward is not None:
        return 1.0 - backward
    raise KeyError(f"no verdict on answers {i} and {j}")


def reference_scores(n: int, verdicts: Mapping[tuple[int, int], float]) -> list[float]:
    """Each answer's preference over its own reference answer, ``p_i,ref`` of :func:`preference`:
    ``verdicts`` holds ``(i, REFERENCE)`` (answer first) and/or ``(REFERENCE, i)`` for each ``i < n``."""
    return [preference(i, REFERENCE, verdicts) for i in range(n)]
