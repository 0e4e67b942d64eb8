"""Shared fixtures: offline mode, and tiny tokenizer/model folders built once per session."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402

from tests import tiny  # noqa: E402


@pytest.fixture(scope="session")
def tiny_tokenizer_dir(tmp_path_factory):
    """A byte-level BPE tokenizer folder with a ChatML chat template and pad/bos/eos tokens."""
    return tiny.build_tokenizer(tmp_path_factory.mktemp("tok"))


@pytest.fixture(scope="session")
def tiny_llama_dir(tmp_path_factory, tiny_tokenizer_dir):
    """A tiny random LlamaForCausalLM folder (with the tiny tokenizer saved beside it)."""
    from transformers import AutoTokenizer

    vocab = len(AutoTokenizer.from_pretrained(tiny_tokenizer_dir))
    return tiny.build_llama(tmp_path_factory.mktemp("llama"), vocab_size=vocab, tokenizer_dir=tiny_tokenizer_dir)


def pytest_collection_modifyitems(config, items):
    """Skip ``slow`` tests unless RUN_SLOW=1 or ``-m slow`` selects them explicitly."""
    if os.environ.get("RUN_SLOW") == "1" or "slow" in (config.getoption("-m") or ""):
        return
    skip = pytest.mark.skip(reason="slow: set RUN_SLOW=1 to run")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)
