"""Train the demo's byte-level BPE tokenizer and save it as a Hugging Face tokenizer folder.

Byte-level BPE (GPT-2 style) has no unknown characters, so Chinese round-trips exactly
(``decode(encode(x)) == x``); the merges learnt on the demo corpus turn most Chinese characters and
frequent words into single tokens. The folder loads with ``AutoTokenizer.from_pretrained`` like any hub
tokenizer and carries a ChatML chat template.

Token ids: ``<pad>`` 0, ``<s>`` 1, ``</s>`` 2, ``<unk>`` 3, ``<|im_start|>`` 4, ``<|im_end|>`` 5. Encoding
adds no special tokens by itself (the chat template writes ``<s>``); a chat model's turns end with
``<|im_end|>``, so generation should stop on it as well as on ``</s>``.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Iterator
from pathlib import Path

SPECIAL_TOKENS = ["<pad>", "<s>", "</s>", "<unk>", "<|im_start|>", "<|im_end|>"]
DEMO_VOCAB_SIZE = 2048

CHATML_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def train_tokenizer(texts: Iterable[str], out_dir: str | Path, vocab_size: int = DEMO_VOCAB_SIZE) -> Path:
    """Train a byte-level BPE with :data:`SPECIAL_TOKENS` on ``texts``; save it with a ChatML template.

    The result is deterministic for the same ``texts`` (in the same order) and ``vocab_size``.
    Returns ``out_dir``.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    out = Path(out_dir)
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(list(texts), trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        pad_token="<pad>",
        additional_special_tokens=["<|im_start|>", "<|im_end|>"],
        model_max_length=512,
    )
    fast.chat_template = CHATML_TEMPLATE
    out.mkdir(parents=True, exist_ok=True)
    fast.save_pretrained(out)
    return out


def demo_texts(data_dir: str | Path) -> Iterator[str]:
    """The tokenizer's training text: pre-training documents, then each SFT prompt and response."""
    data = Path(data_dir)
    with open(data / "pretrain.jsonl", encoding="utf-8") as f:
        for line in f:
            yield json.loads(line)["text"]
    with open(data / "sft_train.csv", encoding="utf-8", newline="") as f:
        for row in csv.DictReader(f):
            yield row["prompt"]
            yield row["response"]
