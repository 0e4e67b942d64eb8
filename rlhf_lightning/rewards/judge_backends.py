"""Where a judge's answers come from: a local causal LM, or an OpenAI-compatible chat endpoint.

Both take a list of conversations (``[{"role": "system", ...}, {"role": "user", ...}]``) and return
one answer text per conversation, in order; the local model also gives the probabilities of the
choice labels' first tokens as its next token. Greedy decoding / ``temperature 0`` by default: a
judge should grade the same answer the same way every time.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, Optional

from rlhf_lightning.errors import ConfigError, PluginError
from rlhf_lightning.redaction import redact_url
from rlhf_lightning.rewards.http_post import HTTPFailure, Limits, post
from rlhf_lightning.rewards.remote import map_ordered
from rlhf_lightning.rewards.request_auth import RequestAuth

Messages = list[dict[str, str]]


class LocalJudgeModel:
    """A causal LM (HF folder or hub id) loaded through :mod:`rlhf_lightning.models.loading`, in eval
    mode without gradients; a plain attribute of the plugin, never part of a training checkpoint.

    A conversation is rendered with the tokenizer's chat template and its generation prompt when the
    tokenizer has one (and ``chat_template`` is not ``False``); otherwise as plain text, the system
    message, a blank line, then the user message. Prompts are left-padded in batches of ``batch_size``.
    """

    def __init__(self, model: str, *, tokenizer: Optional[str] = None, dtype: str = "float32",
                 device: Optional[str] = None, chat_template: Optional[bool] = None, batch_size: int = 8,
                 max_new_tokens: int = 16, trust_remote_code: bool = False) -> None:
        self.source, self.tokenizer_source = model, tokenizer
        self.dtype, self.device, self.chat_template = dtype, device, chat_template
        self.batch_size, self.max_new_tokens = batch_size, max_new_tokens
        self.trust_remote_code = trust_remote_code
        self.model: Any = None
        self.tokenizer: Any = None

    def setup(self, device: Any = None) -> None:
        import torch

        if self.model is None:
            self._load()
        self.model.to(torch.device(device if device is not None else (self.device or "cpu")))

    def _load(self) -> None:
        from rlhf_lightning.models.loading import load_causal_lm, load_tokenizer
        from rlhf_lightning.models.spec import ModelSpec

        spec = ModelSpec(name_or_path=self.source, tokenizer=self.tokenizer_source, dtype=self.dtype,
                         trust_remote_code=self.trust_remote_code)
        tokenizer = load_tokenizer(spec, padding_side="left")
        if self.chat_template and not getattr(tokenizer, "chat_template", None):
            raise ConfigError(f"judge: chat_template is true but the tokenizer of {self.source!r} has none")
        model = load_causal_lm(spec, tokenizer=tokenizer).eval()
        model.requires_grad_(False)
        if self.device is not None:
            model.to(self.device)
        self.model, self.tokenizer = model, tokenizer

    def render(self, messages: Messages) -> str:
        """The exact text the model reads for one conversation (before its own special tokens)."""
        if self.model is None:
            self._load()
        if self.chat_template is not False and getattr(self.tokenizer, "chat_template", None):
            try:
                return self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
            except Exception as exc:  # noqa: BLE001 - jinja raises for e.g. a template without a system role
                raise ConfigError(f"judge: the chat template of {self.source!r} refused the conversation "
                                  f"({type(exc).__name__}: {exc}); drop `system` or set chat_template: false") from exc
        return "\n\n".join(m["content"] for m in messages)

    def _encode(self, conversations: Sequence[Messages]) -> Any:
        templated = self.chat_template is not False and bool(getattr(self.tokenizer, "chat_template", None))
        texts = [self.render(m) for m in conversations]
        # a chat template writes its own BOS; plain text gets the tokenizer's special tokens
        return self.tokenizer(texts, add_special_tokens=not templated, padding=True, return_tensors="pt")

    def _batches(self, conversations: Sequence[Messages]):
        if self.model is None:
            self._load()
        device = next(self.model.parameters()).device
        for start in range(0, len(conversations), self.batch_size):
            batch = self._encode(conversations[start:start + self.batch_size])
            yield batch["input_ids"].to(device), batch["attention_mask"].to(device)

    def answers(self, conversations: Sequence[Messages]) -> list[str]:
        """Greedy answers of at most ``max_new_tokens`` tokens (special tokens removed)."""
        from rlhf_lightning.rollout.generation import GenerationSpec, generate

        spec = GenerationSpec(max_new_tokens=self.max_new_tokens, do_sample=False)
        texts: list[str] = []
        for input_ids, mask in self._batches(conversations):
            texts.extend(generate(self.model, self.tokenizer, input_ids, mask, spec)[1])
        return texts

    def label_tokens(self, labels: Sequence[str]) -> dict[str, list[int]]:
        """Each label's first token id, written alone and after a space (``"A"``, ``" A"``), each once.

        A space-variant whose first token is only whitespace is dropped. ConfigError when two labels
        share a first token: the model's next-token distribution could not tell them apart.
        """
        if self.model is None:
            self._load()
        owner: dict[int, str] = {}
        tokens: dict[str, list[int]] = {}
        for label in labels:
            ids: list[int] = []
            for text in (label, " " + label):
                encoded = self.tokenizer.encode(text, add_special_tokens=False)
                if not encoded or (text != label and not self.tokenizer.decode(encoded[:1]).strip()):
                    continue
                if encoded[0] in owner and owner[encoded[0]] != label:
                    raise ConfigError(f"judge: choices {owner[encoded[0]]!r} and {label!r} begin with the same "
                                      f"token ({self.tokenizer.decode(encoded[:1])!r}), so their probabilities "
                                      "cannot be told apart; use labels that differ in their first token")
                owner[encoded[0]] = label
                if encoded[0] not in ids:
                    ids.append(encoded[0])
            if not ids:
                raise ConfigError(f"judge: choice {label!r} encodes to no token")
            tokens[label] = ids
        return tokens

    def choice_probabilities(self, conversations: Sequence[Messages],
                             tokens: Mapping[str, list[int]]) -> list[dict[str, float]]:
        """``P(next token ∈ label's tokens | conversation)`` per label, one dict per conversation:
        the softmax over the whole vocabulary of the logits after the generation prompt ``(B, V)``."""
        import torch

        out: list[dict[str, float]] = []
        with torch.no_grad():
            for input_ids, mask in self._batches(conversations):
                logits = self.model(input_ids=input_ids, attention_mask=mask).logits[:, -1, :]  # left-padded
                probs = logits.float().softmax(-1).double().cpu()
                out.extend({label: float(p[ids].sum()) for label, ids in tokens.items()} for p in probs)
        return out


class ChatEndpoint:
    """An OpenAI-compatible ``POST {base_url}/chat/completions`` (OpenAI, vLLM, TGI, llama.cpp, Ollama…).

    Request: ``{"model", "messages", "max_tokens", "temperature", **request_options}`` (an option set
    to null removes that key); answer read: ``choices[0].message.content``. One request per
    conversation, ``max_concurrency`` at a time, through :func:`~rlhf_lightning.rewards.http_post.post`
    (timeouts, deadline, retries, size cap, no redirects) with :class:`RequestAuth` headers.
    """

    def __init__(self, base_url: str, model: str, *, auth: RequestAuth, limits: Limits, max_concurrency: int,
                 max_new_tokens: int, temperature: float, request_options: Mapping[str, Any]) -> None:
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model, self.auth, self.limits, self.max_concurrency = model, auth, limits, max_concurrency
        clash = sorted({"model", "messages"} & set(request_options))
        if clash:
            raise ConfigError(f"judge: request_options may not set {clash}; they come from model and the rubric")
        self.options = {"max_tokens": max_new_tokens, "temperature": temperature, **request_options}
        self.options = {k: v for k, v in self.options.items() if v is not None}
        self.label = f"judge {redact_url(self.url)}"

    def answers(self, conversations: Sequence[Messages]) -> list[str]:
        """One answer text per conversation; an answer without text content (e.g. a refusal) is ``""``."""
        headers = self.auth.request_headers({"Content-Type": "application/json", "Accept": "application/json"})
        return map_ordered(lambda m: self._ask(m, headers), list(conversations), self.max_concurrency)

    def _ask(self, messages: Messages, headers: dict[str, str]) -> str:
        body = json.dumps({"model": self.model, "messages": messages, **self.options}).encode("utf-8")
        try:
            raw = post(self.url, body, headers, self.limits)
        except HTTPFailure as exc:
            raise PluginError(RequestAuth.scrub(f"{self.label} {exc}", headers)) from exc
        try:
            answer = json.loads(raw)
            content = answer["choices"][0]["message"].get("content")
        except (json.JSONDecodeError, UnicodeDecodeError, KeyError, IndexError, TypeError, AttributeError) as exc:
            snippet = RequestAuth.scrub(raw[:200].decode("utf-8", "replace"), headers)
            raise PluginError(f"{self.label} did not answer as a chat completion "
                              f"({{\"choices\": [{{\"message\": {{\"content\": ...}}}}]}}): {snippet!r}") from exc
        if content is not None and not isinstance(content, str):
            raise PluginError(f"{self.label} answered with non-text content {str(content)[:200]!r}")
        return content or ""

