"""What a reward model reads for one (prompt, response): the same tokens in training and in scoring.

- A tokenizer with a chat template: the conversation ``[user: prompt, assistant: response]``
  rendered by the template and tokenised with ``add_special_tokens=False`` (the template writes its
  own special tokens).
- A tokenizer without one (BERT-like encoders, base LMs): the text pair ``(prompt, response)``
  with the tokenizer's own pair layout and segment ids — ``[CLS] prompt [SEP] response [SEP]`` with
  ``token_type_ids`` 0 / 1 for BERT — the input sequence-pair classifiers are pretrained on.

The reward-model stage encodes its training and validation data this way
(:func:`rlhf_lightning.data.comparison_batches.encode_comparisons` with ``encoding="classifier"``)
and the ``classifier`` reward plugin (``rlhf-lightning score``, PPO) scores with it, so an exported
reward model scores a pair exactly as it was trained to. Imports nothing heavy.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rlhf_lightning.errors import ConfigError

Message = dict


def uses_chat_template(tokenizer: Any, chat_template: bool | None = None) -> bool:
    """Whether samples are rendered with the template: the tokenizer's own choice unless forced.

    ``chat_template=None`` follows the tokenizer (what training does); ``True`` requires a template,
    ``False`` ignores one and encodes text pairs.
    """
    has = bool(getattr(tokenizer, "chat_template", None))
    if chat_template and not has:
        raise ConfigError("chat_template=True but the tokenizer has no chat template")
    return has if chat_template is None else bool(chat_template)


def chat_text(tokenizer: Any, prompt: str | list[Message], response: str | list[Message]) -> str:
    """The template's rendering of the prompt (a string is one user turn) and the response (one assistant turn)."""
    p_msgs = prompt if isinstance(prompt, list) else [{"role": "user", "content": prompt}]
    r_msgs = response if isinstance(response, list) else [{"role": "assistant", "content": response}]
    return tokenizer.apply_chat_template(p_msgs + r_msgs, tokenize=False)


def encode_reward_inputs(tokenizer: Any, prompts: Sequence[str | list[Message]],
                         responses: Sequence[str | list[Message]], *, chat_template: bool | None = None,
                         **kwargs: Any) -> Any:
    """Tokenise B samples as a reward model reads them; returns the tokenizer's ``BatchEncoding``.

    ``kwargs`` go to the tokenizer call (``padding``, ``truncation``, ``max_length``,
    ``return_tensors``...). Text pairs carry ``token_type_ids`` when the tokenizer returns them.
    """
    if len(prompts) != len(responses):
        raise ValueError(f"{len(prompts)} prompts but {len(responses)} responses")
    if uses_chat_template(tokenizer, chat_template):
        texts = [chat_text(tokenizer, p, r) for p, r in zip(prompts, responses, strict=True)]
        return tokenizer(texts, add_special_tokens=False, **kwargs)
    if any(isinstance(x, list) for x in (*prompts, *responses)):
        raise ConfigError("the tokenizer has no chat template, so conversational (message-list) samples cannot "
                          "be encoded; give plain-text prompts and responses or a tokenizer with a chat template")
    return tokenizer(list(prompts), list(responses), **kwargs)
