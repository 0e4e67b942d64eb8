"""Judge reward: a language model grades answers by a rubric written in YAML ("LLM-as-a-judge", RLAIF).

The judge is a local causal LM (``model`` = an HF folder or hub id, loaded through
:mod:`rlhf_lightning.models.loading`) or, with ``base_url``, any OpenAI-compatible chat-completions
endpoint (``model`` = the served model's name; the key comes from the environment variable named by
``api_key_env``; transport, TLS, secrets, timeouts and size limits as the ``remote`` reward:
:mod:`~rlhf_lightning.rewards.http_post`, :mod:`~rlhf_lightning.rewards.request_auth`).

Each judgment is one conversation: the ``system`` message and the ``template`` filled in. Its verdict
is read (:mod:`~rlhf_lightning.rewards.judge_scores`) from the answer text — a number in ``scale``,
normalised to [0, 1], or a label among ``choices`` mapped to its value — or, for a local model with
``read: probabilities``, as the expected value of ``choices`` under the probabilities of their first
tokens as the judge's next token (no text generated).

Modes:

- ``pointwise``: the template has ``{prompt}`` and ``{completion}``; the score is the verdict.
- ``pairwise``: the template has ``{prompt}``, ``{first}`` and ``{second}``, and the verdict is the
  preference for the first answer (choice values and ``default_score`` in [0, 1]; default choices
  ``A: 1, B: 0``). With ``reference: COLUMN`` each answer is compared with that dataset column's
  answer and scores its preference over it. Without, the answers to the same prompt **in one call**
  are compared in a round robin and each scores its win rate against the others
  (:func:`~rlhf_lightning.rewards.judge_scores.win_rates`): this is how the ``sample`` command's N
  answers per prompt, and a GRPO/RLOO group, are ranked; ``K`` answers cost ``K(K−1)`` judgments.
  ``both_orders`` (default) judges each pair in both orders, which cancels a judge's position bias.
  Win rates average 1/2 over every group, so their batch mean carries no signal of progress; a PPO
  or GRPO run's validation (one greedy answer per prompt) needs ``reference``, or ``unpaired:
  neutral``, which scores a lone answer 1/2.

Dataset columns named in ``columns`` fill template fields of the same name (e.g. ``{answer}``).

Unreadable answers (no number, a number out of range, no label or two different labels, a pattern
that does not match, an empty answer): ``on_unparseable: error`` (default) stops with an error naming
the sample and the judge's raw answer; ``default`` uses ``default_score`` as the verdict, logs a
warning with the count and the first raw answer, and reports the count in :meth:`metrics`.
"""

from __future__ import annotations

import logging
import math
import re
from typing import Any, Literal, Optional

from rlhf_lightning.errors import PluginError
from rlhf_lightning.option_checks import at_least, non_negative, positive, require
from rlhf_lightning.redaction import redact_url
from rlhf_lightning.rewards.base import RewardFunction
from rlhf_lightning.rewards.http_post import Limits
from rlhf_lightning.rewards.judge_backends import ChatEndpoint, LocalJudgeModel, Messages
from rlhf_lightning.rewards.judge_scores import (
    REFERENCE,
    Verdict,
    expected_choice,
    group_by_prompt,
    reference_scores,
    round_robin,
    template_fields,
    win_rates,
)
from rlhf_lightning.rewards.request_auth import RequestAuth

log = logging.getLogger(__name__)

SYSTEM = "You are a careful, impartial judge of answers written by an AI assistant."
POINTWISE_TEMPLATE = ("Rate the answer to the question below for helpfulness, correctness and clarity, from 1 "
                      "(useless) to 10 (excellent).\n\n[Question]\n{prompt}\n\n[Answer]\n{completion}\n\n"
                      "Reply with the number only.")
PAIRWISE_TEMPLATE = ("Which answer to the question below is more helpful, correct and clear?\n\n[Question]\n"
                     "{prompt}\n\n[Answer A]\n{first}\n\n[Answer B]\n{second}\n\nReply with A or B only.")
_FIELDS = {"pointwise": ("prompt", "completion"), "pairwise": ("prompt", "first", "second")}


class JudgeReward(RewardFunction):
    """Scores answers by a judge LM's verdicts on a rubric: a local causal LM or an OpenAI-compatible endpoint.

    See the module doc for modes, verdicts and the unparseable-answer policy.

    Args:
        model: local: an HF causal-LM folder or hub id; with ``base_url``: the endpoint's model name.
        base_url: an OpenAI-compatible API root (``https://api.openai.com/v1``, ``http://127.0.0.1:8000/v1``).
        mode: ``pointwise`` or ``pairwise``.
        template: the rubric, a ``str.format`` template (default: a helpfulness rubric for the mode).
        system: the system message (``None``: none).
        scale: ``[low, high]``: read a number in this range (default ``[1, 10]`` when no ``choices``).
        choices: ``{label: value}``: read a label (default ``{A: 1, B: 0}`` in pairwise mode).
        read: ``text`` (parse the answer) or ``probabilities`` (local model and ``choices`` only).
        pattern: regex whose first group (else whole match) holds the verdict, e.g. ``"\\[\\[(\\d+)\\]\\]"``.
        columns: dataset columns that fill template fields of the same name.
        reference: pairwise: the dataset column of the answer each completion is compared with.
        both_orders: pairwise: judge each pair in both orders (cancels position bias; twice the cost).
        unpaired: pairwise without ``reference``: an answer alone with its prompt in a call is an
            ``error``, or scores ``neutral`` 0.5 (the mean win rate of any group; counted in metrics).
        on_unparseable: ``error`` or ``default`` (use ``default_score``, log the count).
        default_score: the verdict of an unreadable answer with ``on_unparseable: default``.
        min_choice_mass: ``read: probabilities``: below this total probability of the labels the
            answer counts as unreadable (the judge was not going to answer with a label).
        max_new_tokens, temperature: the judge's answer length and temperature (local: greedy).
        batch_size: conversations per forward pass of a local model.
        tokenizer, dtype, device, chat_template, trust_remote_code: local model loading.
        api_key_env, headers, headers_from_env, allow_insecure_http, timeout, retries, backoff,
        deadline, max_response_bytes, max_concurrency: endpoint transport, as the ``remote`` reward.
        request_options: extra keys of the chat-completions request (``null`` removes a default key).
    """

    def __init__(self, model: str, base_url: Optional[str] = None,
                 mode: Literal["pointwise", "pairwise"] = "pointwise", template: Optional[str] = None,
                 system: Optional[str] = SYSTEM, scale: Optional[tuple[float, float]] = None,
                 choices: Optional[dict[str, float]] = None, read: Literal["text", "probabilities"] = "text",
                 pattern: Optional[str] = None, columns: Optional[list[str]] = None,
                 reference: Optional[str] = None, both_orders: bool = True,
                 unpaired: Literal["error", "neutral"] = "error",
                 on_unparseable: Literal["error", "default"] = "error", default_score: Optional[float] = None,
                 min_choice_mass: float = 0.0, max_new_tokens: int = 16, temperature: float = 0.0,
                 batch_size: int = 8, tokenizer: Optional[str] = None, dtype: str = "float32",
                 device: Optional[str] = None, chat_template: Optional[bool] = None, trust_remote_code: bool = False,
                 api_key_env: Optional[str] = None, headers: Optional[dict[str, str]] = None,
                 headers_from_env: Optional[dict[str, str]] = None, allow_insecure_http: bool = False,
                 timeout: float = 60.0, retries: int = 3, backoff: float = 1.0, deadline: Optional[float] = None,
                 max_response_bytes: int = 2 ** 20, max_concurrency: int = 4,
                 request_options: Optional[dict[str, Any]] = None) -> None:
        super().__init__()
        self.mode, self.read, self.both_orders, self.unpaired = mode, read, both_orders, unpaired
        self.on_unparseable, self.default_score, self.min_choice_mass = on_unparseable, default_score, min_choice_mass
        self.system = system
        self.template = template if template is not None else (
            POINTWISE_TEMPLATE if mode == "pointwise" else PAIRWISE_TEMPLATE)
        self.columns, self.reference = list(columns or []), reference
        if scale is None and choices is None:
            scale, choices = ((1.0, 10.0), None) if mode == "pointwise" else (None, {"A": 1.0, "B": 0.0})
        self._check_verdict_options(scale, choices, pattern)
        self.verdict = Verdict(scale=tuple(scale) if scale is not None else None, choices=choices, pattern=pattern)
        self._check_template()
        for name, value in (("max_new_tokens", max_new_tokens), ("batch_size", batch_size),
                            ("max_response_bytes", max_response_bytes), ("max_concurrency", max_concurrency)):
            at_least(self, name, value, 1)
        for name, value in (("temperature", temperature), ("retries", retries), ("backoff", backoff)):
            non_negative(self, name, value)
        positive(self, "timeout", timeout)
        positive(self, "deadline", deadline, optional=True)
        self._check_unparseable_policy()
        self.base_url = base_url
        if base_url is None:
            for name, value in (("api_key_env", api_key_env), ("headers", headers),
                                ("headers_from_env", headers_from_env), ("request_options", request_options)):
                require(self, name, not value, "is for an endpoint judge (set base_url), not a local model", value)
            self.backend: Any = LocalJudgeModel(model, tokenizer=tokenizer, dtype=dtype, device=device,
                                                chat_template=chat_template, batch_size=batch_size,
                                                max_new_tokens=max_new_tokens, trust_remote_code=trust_remote_code)
        else:
            require(self, "read", read == "text", "must be 'text' for an endpoint judge (base_url set)", read)
            self.auth = RequestAuth("judge", dict(headers or {}), dict(headers_from_env or {}), api_key_env)
            url = base_url.rstrip("/") + "/chat/completions"
            self.auth.check(url, allow_insecure_http)
            if deadline is None:
                deadline = timeout * (retries + 1) + backoff * (2 ** retries - 1)
            limits = Limits(float(timeout), float(deadline), int(retries), float(backoff), int(max_response_bytes))
            self.backend = ChatEndpoint(base_url, model, auth=self.auth, limits=limits,
                                        max_concurrency=int(max_concurrency), max_new_tokens=int(max_new_tokens),
                                        temperature=float(temperature), request_options=dict(request_options or {}))
        self._tokens: Optional[dict[str, list[int]]] = None
        self._last: dict[str, float] = {}
        self.unparseable_total = 0

    # ------------------------------------------------------------------ option checks

    def _check_verdict_options(self, scale: Any, choices: Any, pattern: Optional[str]) -> None:
        require(self, "choices", scale is None or choices is None, "give scale or choices, not both", choices)
        if scale is not None:
            ok = len(scale) == 2 and all(math.isfinite(v) for v in scale) and scale[0] < scale[1]
            require(self, "scale", ok, "must be [low, high] with finite low < high", scale)
        if choices is not None:
            require(self, "choices", bool(choices) and all(isinstance(k, str) and k.strip() for k in choices),
                    "must map non-empty labels to values", choices)
            require(self, "choices", all(math.isfinite(v) for v in choices.values()), "values must be finite",
                    choices)
            if self.mode == "pairwise":
                require(self, "choices", all(0.0 <= v <= 1.0 for v in choices.values()),
                        "values must be in [0, 1] in pairwise mode (1: the first answer is better)", choices)
        require(self, "read", self.read == "text" or choices is not None,
                "'probabilities' needs choices (labels whose token probabilities are read)", self.read)
        if pattern is not None:
            try:
                re.compile(pattern)
            except re.error as exc:
                require(self, "pattern", False, f"is not a regular expression ({exc})", pattern)

    def _check_template(self) -> None:
        try:
            fields = template_fields(self.template)
        except ValueError as exc:
            require(self, "template", False, str(exc), self.template, f"template: {exc}")
            return
        builtin = _FIELDS[self.mode]
        for name in self.columns:
            require(self, "columns", name.isidentifier() and name not in builtin,
                    f"names must be identifiers other than {', '.join(builtin)}", self.columns)
        unknown = [f for f in fields if f not in builtin and f not in self.columns]
        allowed = ", ".join("{" + f + "}" for f in (*builtin, *self.columns))
        require(self, "template", not unknown,
                f"has unknown field(s) {', '.join('{' + f + '}' for f in unknown)}; the {self.mode} judge fills "
                f"{allowed} (add dataset columns to `columns`; write a literal brace as {{{{ or }}}})", self.template)
        missing = [f for f in builtin[1:] if f not in fields]
        require(self, "template", not missing, f"lacks {', '.join('{' + f + '}' for f in missing)}: the judge "
                f"would not see the answer(s) it grades", self.template)
        require(self, "reference", self.reference is None or self.mode == "pairwise",
                "is for mode: pairwise", self.reference)

    def _check_unparseable_policy(self) -> None:
        if self.on_unparseable == "default":
            ok = self.default_score is not None and math.isfinite(self.default_score)
            require(self, "default_score", ok, "must be a finite number with on_unparseable: default",
                    self.default_score)
            if self.mode == "pairwise":
                require(self, "default_score", 0.0 <= self.default_score <= 1.0,
                        "must be in [0, 1] in pairwise mode (0.5: a tie)", self.default_score)
        require(self, "min_choice_mass", 0.0 <= self.min_choice_mass < 1.0, "must be in [0, 1)",
                self.min_choice_mass)

    # ------------------------------------------------------------------ plugin hooks

    def __repr__(self) -> str:
        where = redact_url(self.base_url) if self.base_url else "local"
        return f"JudgeReward(mode={self.mode!r}, judge={where}, read={self.read!r})"

    def setup(self, device: Any = None) -> None:
        """Load a local judge onto ``device``; for an endpoint, check that its secrets are set."""
        if isinstance(self.backend, LocalJudgeModel):
            self.backend.setup(device)
        else:
            self.auth.request_headers({})

    def metrics(self) -> dict[str, float]:
        return dict(self._last)

    def __call__(self, prompts: list[str], completions: list[str], **columns: Any) -> list[float]:
        prompts, completions = list(prompts), list(completions)
        self._last = {"judgments": 0.0, "unparseable": 0.0, "unparseable_total": float(self.unparseable_total)}
        extra = {name: self._column(name, columns, len(prompts)) for name in self.columns}
        if self.mode == "pointwise":
            keys = list(range(len(prompts)))
            texts = {i: {"prompt": prompts[i], "completion": completions[i]} for i in keys}
            verdicts = self._judge(keys, texts, extra, prompts)
            return [verdicts[i] for i in keys]
        if self.reference is not None:
            references = self._column(self.reference, columns, len(prompts))
            keys = [(i, REFERENCE) for i in range(len(prompts))]
            keys += [(REFERENCE, i) for i in range(len(prompts))] if self.both_orders else []

            def answer(i: int, row: int) -> str:
                return references[row] if i == REFERENCE else completions[i]

            return reference_scores(len(prompts), self._pairs(keys, prompts, answer, extra))
        groups = group_by_prompt(prompts)
        alone = [group[0] for group in groups if len(group) < 2]
        if alone and self.unpaired == "error":
            raise PluginError(f"judge (pairwise): sample {alone[0]} is the only answer to its prompt in this batch "
                              f"of {len(prompts)} ({len(alone)} such), so it has nothing to be compared with; score "
                              "the answers to one prompt together, set `reference` to a column holding a reference "
                              "answer, or set unpaired: neutral (PPO/GRPO validation answers each prompt once)")
        groups = [group for group in groups if len(group) > 1]
        keys = [pair for group in groups for pair in round_robin(group, self.both_orders)]
        verdicts = self._pairs(keys, prompts, lambda i, _: completions[i], extra)
        scores = {i: 0.5 for i in alone}  # the mean win rate of any group: batch means stay comparable
        for group in groups:
            scores.update(win_rates(group, verdicts))
        self._last["unpaired"] = float(len(alone))
        return [scores[i] for i in range(len(prompts))]

    # ------------------------------------------------------------------ judging

    def _column(self, name: str, columns: dict[str, Any], n: int) -> list[str]:
        values = columns.get(name)
        if not isinstance(values, (list, tuple)) or len(values) != n:
            raise PluginError(f"judge: the template needs the dataset column {name!r}, which this batch "
                              f"{'lacks' if values is None else 'holds not as one value per sample'} "
                              f"(columns: {', '.join(sorted(columns)) or 'none'})")
        return [str(v) for v in values]

    def _pairs(self, keys: list[tuple[int, int]], prompts: list[str], answer, extra) -> dict[tuple[int, int], float]:
        """Verdicts on ordered pairs ``(first, second)``; the sample index of a key is its non-reference end.
        Two identical answers get 0.5 without asking: neither is better."""
        texts, verdicts = {}, {}
        for first, second in keys:
            row = second if first == REFERENCE else first
            a, b = answer(first, row), answer(second, row)
            if a == b:
                verdicts[(first, second)] = 0.5
            else:
                texts[(first, second)] = {"prompt": prompts[row], "first": a, "second": b}
        return {**verdicts, **self._judge(list(texts), texts, extra, prompts)}

    def _conversation(self, fields: dict[str, str]) -> Messages:
        user = self.template.format(**fields)
        return ([{"role": "system", "content": self.system}] if self.system else []) + [
            {"role": "user", "content": user}]

    def _judge(self, keys: list, texts: dict, extra: dict[str, list[str]], prompts: list[str]) -> dict[Any, float]:
        """Ask the judge about each key's texts and read the verdicts, applying the unparseable policy."""
        if not keys:
            return {}
        conversations = []
        for key in keys:
            row = key if isinstance(key, int) else (key[1] if key[0] == REFERENCE else key[0])
            conversations.append(self._conversation({**texts[key], **{k: v[row] for k, v in extra.items()}}))
        read, raw = self._verdicts(conversations)
        bad = [k for k, v in zip(keys, read, strict=True) if v is None]
        self._last.update(judgments=float(len(keys)), unparseable=float(len(bad)))
        if self.read == "probabilities":
            self._last["choice_mass"] = sum(self._masses) / len(self._masses)
        if bad:
            first = keys.index(bad[0])
            where = _where(bad[0], prompts)
            if self.on_unparseable == "error":
                raise PluginError(f"judge: cannot read {self.verdict.describe()} from the judge's answer for {where} "
                                  f"({len(bad)} of {len(keys)} answers unreadable); raw answer: "
                                  f"{_clip(raw[first])!r}. Fix the rubric or `pattern`, or set on_unparseable: "
                                  "default with a default_score")
            self.unparseable_total += len(bad)
            log.warning("judge: %d of %d answers unreadable as %s, scored %s (on_unparseable: default); first, for "
                        "%s: %r", len(bad), len(keys), self.verdict.describe(), self.default_score, where,
                        _clip(raw[first]))
        self._last["unparseable_total"] = float(self.unparseable_total)
        return {k: (self.default_score if v is None else v) for k, v in zip(keys, read, strict=True)}

    def _verdicts(self, conversations: list[Messages]) -> tuple[list[Optional[float]], list[str]]:
        if self.read == "text":
            answers = self.backend.answers(conversations)
            return [self.verdict.read(a) for a in answers], answers
        if self._tokens is None:
            self._tokens = self.backend.label_tokens(list(self.verdict.choices))
        probabilities = self.backend.choice_probabilities(conversations, self._tokens)
        values, raw, self._masses = [], [], []
        for probs in probabilities:
            value, mass = expected_choice(probs, self.verdict.choices)
            self._masses.append(mass)
            values.append(value if mass > 0 and mass >= self.min_choice_mass else None)
            raw.append("label probabilities " + ", ".join(f"{k}: {p:.3g}" for k, p in probs.items()))
        return values, raw


def _where(key: Any, prompts: list[str]) -> str:
    if isinstance(key, int):
        return f"sample {key} (prompt {_clip(prompts[key], 60)!r})"
    first, second = key
    if REFERENCE in key:
        row = second if first == REFERENCE else first
        order = "reference first" if first == REFERENCE else "answer first"
        return f"sample {row} against its reference ({order}; prompt {_clip(prompts[row], 60)!r})"
    return f"samples {first} (shown first) and {second} (prompt {_clip(prompts[first], 60)!r})"


def _clip(text: str, n: int = 300) -> str:
    return text if len(text) <= n else text[:n - 3] + "..."
