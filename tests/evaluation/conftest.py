"""Tiny policies for the evaluation tests: a copy of the session's tiny Llama and a different one."""

from __future__ import annotations

import shutil

import pytest

from tests import tiny


@pytest.fixture(scope="session")
def tiny_llama_copy_dir(tmp_path_factory, tiny_llama_dir):
    """The same weights as ``tiny_llama_dir`` in another folder (a second, identical policy)."""
    path = tmp_path_factory.mktemp("llama_copy") / "model"
    shutil.copytree(tiny_llama_dir, path)
    return path


@pytest.fixture(scope="session")
def other_llama_dir(tmp_path_factory, tiny_tokenizer_dir):
    """A tiny Llama with other random weights and the same tokenizer."""
    from transformers import AutoTokenizer

    vocab = len(AutoTokenizer.from_pretrained(tiny_tokenizer_dir))
    return tiny.build_llama(tmp_path_factory.mktemp("llama_other"), vocab_size=vocab, seed=1,
                            tokenizer_dir=tiny_tokenizer_dir)
