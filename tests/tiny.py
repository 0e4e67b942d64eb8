"""Tiny tokenizers and models built locally, loaded through the same ``from_pretrained`` path a hub id takes.

Nothing here touches the network: a byte-level BPE is trained on a few sentences (English and Chinese)
in a fraction of a second, and model weights are random.
"""

from __future__ import annotations

from pathlib import Path

_CORPUS = [
    "Write a poem about spring. Spring wind brings flowers and birds sing in the trees.",
    "Explain gravity. Gravity pulls objects toward each other; the earth pulls the moon.",
    "Translate to French: good morning. Bonjour.",
    "写一首关于春天的诗。春风拂面，百花齐放，燕子呢喃，绿意盎然。",
    "请解释什么是人工智能。人工智能是让机器学习和推理的技术。",
    "The quick brown fox jumps over the lazy dog. 0123456789 !?.,;:'\"()[]{}<>-_=+*/\\|@#$%^&~`",
    "user assistant system hello world thank you answer question",
]


def build_tokenizer(path: str | Path, *, vocab_size: int = 400, chat_template: bool = True) -> Path:
    """Train a byte-level BPE on a few sentences and save it as a HF tokenizer folder at ``path``.

    The same trainer as the demo's tokenizer (ChatML template, pad/bos/eos/unk ids 0-3);
    ``chat_template=False`` removes the template, for the plain prompt+completion paths.
    """
    from transformers import AutoTokenizer

    from rlhf_lightning.demo.tokenizer import train_tokenizer

    path = train_tokenizer(_CORPUS * 4, path, vocab_size=vocab_size)
    if not chat_template:
        tok = AutoTokenizer.from_pretrained(path)
        tok.chat_template = None
        (path / "chat_template.jinja").unlink(missing_ok=True)
        tok.save_pretrained(path)
    return path


def build_llama(path: str | Path, *, vocab_size: int, hidden_size: int = 32, layers: int = 2, heads: int = 4,
                seed: int = 0, tokenizer_dir: str | Path | None = None, **overrides: object) -> Path:
    """Save a randomly initialised tiny ``LlamaForCausalLM`` (and optionally its tokenizer) at ``path``;
    ``overrides`` replace fields of its ``LlamaConfig`` (e.g. ``attention_dropout``)."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    path = Path(path)
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=hidden_size,
        intermediate_size=hidden_size * 2,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=heads,
        max_position_embeddings=256,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
        tie_word_embeddings=False,
        **overrides,
    )
    LlamaForCausalLM(config).save_pretrained(path)
    if tokenizer_dir is not None:
        AutoTokenizer.from_pretrained(tokenizer_dir).save_pretrained(path)
    return path
