"""Model-based reward: score (prompt, completion) pairs with any Hugging Face sequence classifier.

Works with any ``AutoModelForSequenceClassification`` folder or hub id — public reward models,
this project's own reward-model export (``num_labels=1``), or a sentiment/toxicity classifier
(pick the logit with ``label_index``). transformers is imported on first use, not at import.
"""

from __future__ import annotations

import math
from typing import Any, Literal

from rlhf_lightning.errors import ConfigError, ModelError
from rlhf_lightning.rewards.base import RewardFunction

Activation = Literal["none", "sigmoid", "softmax"]


class SequenceClassifierScorer:
    """Loads a sequence classifier and its own tokenizer lazily, and scores text pairs in batches.

    Each sample is encoded as the reward-model stage trains on it
    (:mod:`rlhf_lightning.data.reward_inputs`): rendered with the tokenizer's chat template as
    ``[user: prompt, assistant: completion]`` when the tokenizer has one (and ``chat_template`` is
    not ``False``); otherwise as the text pair ``(prompt, completion)`` (``[CLS] p [SEP] c [SEP]``
    with segment ids for BERT).
    Inputs longer than ``max_length`` tokens are truncated from the left by default, so the end of
    the completion — where a reward model reads its score — is kept. Eval mode, no gradients.

    ``num_labels`` overrides the checkpoint's head size (a bare encoder gets a fresh, randomly
    initialised head — only useful before fine-tuning or in tests).

    The model is loaded by :meth:`setup` (a stage calls it with its device) or on the first call;
    it is a plain attribute, not a submodule of any LightningModule, so it is never written into a
    training checkpoint.
    """

    def __init__(self, model: str, tokenizer: str | None = None, batch_size: int = 16, max_length: int = 512,
                 label_index: int = 0, activation: Activation = "none", chat_template: bool | None = None,
                 truncation_side: Literal["left", "right"] = "left", dtype: str | None = None,
                 device: str | None = None, num_labels: int | None = None, trust_remote_code: bool = False) -> None:
        if batch_size < 1 or max_length < 2:
            raise ConfigError(f"batch_size must be >= 1 and max_length >= 2 (got {batch_size}, {max_length})")
        self.model_name = str(model)
        self.tokenizer_name = str(tokenizer) if tokenizer else str(model)
        self.batch_size = batch_size
        self.max_length = max_length
        self.label_index = label_index
        self.activation = activation
        self.chat_template = chat_template
        self.truncation_side = truncation_side
        self.dtype = dtype
        self.device = device
        self.num_labels = num_labels
        self.trust_remote_code = trust_remote_code
        self.model: Any = None
        self.tokenizer: Any = None

    def setup(self, device: Any = None) -> None:
        import torch

        if self.model is None:
            self._load()
        target = device if device is not None else (self.device or "cpu")
        self.model.to(torch.device(target))

    def _load(self) -> None:
        try:
            import torch
            from transformers import AutoModelForSequenceClassification, AutoTokenizer
        except ImportError as exc:  # pragma: no cover - transformers is a dependency
            raise ModelError(f"the model-based reward needs transformers: pip install transformers ({exc})") from exc
        kwargs: dict[str, Any] = {"trust_remote_code": self.trust_remote_code}
        if self.num_labels is not None:  # e.g. a bare encoder that gets a fresh scalar head
            kwargs["num_labels"] = self.num_labels
        if self.dtype is not None:
            kwargs["dtype"] = self.dtype if self.dtype == "auto" else getattr(torch, self.dtype)
        try:
            tokenizer = AutoTokenizer.from_pretrained(self.tokenizer_name, trust_remote_code=self.trust_remote_code)
            model = AutoModelForSequenceClassification.from_pretrained(self.model_name, **kwargs)
        except (OSError, ValueError) as exc:
            raise ModelError(f"cannot load sequence classifier {self.model_name!r}: {exc}") from exc
        if tokenizer.pad_token is None:
            if tokenizer.eos_token is None:
                raise ModelError(f"tokenizer of {self.tokenizer_name!r} has neither a pad nor an eos token")
            tokenizer.pad_token = tokenizer.eos_token
        if getattr(model.config, "pad_token_id", None) is None:
            # decoder classifiers find the last real token through pad_token_id
            model.config.pad_token_id = tokenizer.pad_token_id
        tokenizer.padding_side = "right"
        tokenizer.truncation_side = self.truncation_side
        if self.label_index >= model.config.num_labels:
            raise ConfigError(f"label_index {self.label_index} but {self.model_name!r} has "
                              f"{model.config.num_labels} labels")
        model.eval()
        model.requires_grad_(False)
        self.model, self.tokenizer = model, tokenizer
        if self.device is not None:
            model.to(self.device)

    def _encode(self, prompts: list[str], completions: list[str]) -> Any:
        from rlhf_lightning.data.reward_inputs import encode_reward_inputs

        if self.chat_template and not getattr(self.tokenizer, "chat_template", None):
            raise ConfigError(f"chat_template=True but the tokenizer of {self.tokenizer_name!r} has no chat template")
        return encode_reward_inputs(self.tokenizer, prompts, completions, chat_template=self.chat_template,
                                    padding=True, truncation=True, max_length=self.max_length, return_tensors="pt")

    def render(self, prompt: str, completion: str) -> str:
        """The exact text the classifier sees for one sample (for debugging configs)."""
        if self.model is None:
            self._load()
        return self.tokenizer.decode(self._encode([prompt], [completion])["input_ids"][0])

    def __call__(self, prompts: list[str], completions: list[str]) -> list[float]:
        import torch

        if self.model is None:
            self._load()
        device = next(self.model.parameters()).device
        scores: list[float] = []
        with torch.no_grad():
            for start in range(0, len(prompts), self.batch_size):
                batch = self._encode(prompts[start:start + self.batch_size],
                                     completions[start:start + self.batch_size])
                logits = self.model(**{k: v.to(device) for k, v in batch.items()}).logits.float()
                if self.activation == "softmax":
                    logits = logits.softmax(-1)
                elif self.activation == "sigmoid":
                    logits = logits.sigmoid()
                scores.extend(logits[:, self.label_index].tolist())
        return scores


class RunningNorm:
    """Running mean and standard deviation (Chan et al.'s parallel update), checkpointable."""

    def __init__(self) -> None:
        self.count, self.mean, self.m2 = 0, 0.0, 0.0

    def update(self, values: list[float]) -> None:
        n = len(values)
        if n == 0:
            return
        mean = sum(values) / n
        m2 = sum((v - mean) ** 2 for v in values)
        total = self.count + n
        delta = mean - self.mean
        self.mean += delta * n / total
        self.m2 += m2 + delta * delta * self.count * n / total
        self.count = total

    @property
    def std(self) -> float:
        return math.sqrt(self.m2 / self.count) if self.count > 1 else 1.0

    def __call__(self, values: list[float], eps: float = 1e-8) -> list[float]:
        return [(v - self.mean) / (self.std + eps) for v in values]

    def state_dict(self) -> dict[str, Any]:
        return {"count": self.count, "mean": self.mean, "m2": self.m2}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.count, self.mean, self.m2 = int(state["count"]), float(state["mean"]), float(state["m2"])


class ClassifierReward(RewardFunction):
    """Scores with a Hugging Face sequence classifier (a reward model, hub id or local folder).

    The score is ``logits[:, label_index]`` (after ``activation``). With ``normalize=True`` scores
    are standardised by a running mean/std updated with every batch (state in ``state_dict()``,
    so it resumes with the training checkpoint). See :class:`SequenceClassifierScorer` for
    tokenisation, chat templates, batching and truncation.
    """

    def __init__(self, model: str, tokenizer: str | None = None, batch_size: int = 16, max_length: int = 512,
                 label_index: int = 0, activation: Activation = "none", chat_template: bool | None = None,
                 truncation_side: Literal["left", "right"] = "left", normalize: bool = False,
                 dtype: str | None = None, device: str | None = None, num_labels: int | None = None,
                 trust_remote_code: bool = False) -> None:
        super().__init__()
        self.scorer = SequenceClassifierScorer(
            model, tokenizer=tokenizer, batch_size=batch_size, max_length=max_length, label_index=label_index,
            activation=activation, chat_template=chat_template, truncation_side=truncation_side, dtype=dtype,
            device=device, num_labels=num_labels, trust_remote_code=trust_remote_code)
        self.normalize = normalize
        self.norm = RunningNorm()
        self._last_raw_mean: float | None = None

    def setup(self, device: Any = None) -> None:
        self.scorer.setup(device)

    def __call__(self, prompts: list[str], completions: list[str], **columns: Any) -> list[float]:
        raw = self.scorer(list(prompts), list(completions))
        self._last_raw_mean = sum(raw) / len(raw) if raw else None
        if not self.normalize:
            return raw
        self.norm.update(raw)
        return self.norm(raw)

    def state_dict(self) -> dict[str, Any]:
        return {"norm": self.norm.state_dict()} if self.normalize else {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if "norm" in state:
            self.norm.load_state_dict(state["norm"])

    def metrics(self) -> dict[str, float]:
        out = {} if self._last_raw_mean is None else {"raw_mean": self._last_raw_mean}
        if self.normalize:
            out.update(running_mean=self.norm.mean, running_std=self.norm.std)
        return out
