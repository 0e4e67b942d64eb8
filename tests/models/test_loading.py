"""Loading from a ModelSpec: local folders through the hub code path, from-scratch configs, options."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoTokenizer

from rlhf_lightning.errors import ConfigError, ModelError
from rlhf_lightning.models.loading import count_parameters, load_causal_lm, load_sequence_classifier, load_tokenizer
from rlhf_lightning.models.spec import LoraSpec, ModelSpec, QuantizationSpec

TINY_CONFIG = {"model_type": "llama", "hidden_size": 16, "intermediate_size": 24, "num_hidden_layers": 3,
               "num_attention_heads": 2, "num_key_value_heads": 1, "vocab_size": 64}


def test_tokenizer_from_spec_and_path(tiny_llama_dir, tiny_tokenizer_dir):
    tok = load_tokenizer(str(tiny_llama_dir))
    assert tok.padding_side == "right" and tok.pad_token == "<pad>"
    # ``tokenizer`` overrides the model folder as the source.
    left = load_tokenizer(ModelSpec(name_or_path="/nowhere", tokenizer=str(tiny_tokenizer_dir)), padding_side="left")
    assert left.padding_side == "left" and left.chat_template


def test_tokenizer_without_pad_falls_back_to_eos_with_warning(tiny_tokenizer_dir, tmp_path):
    tok = AutoTokenizer.from_pretrained(tiny_tokenizer_dir)
    tok.pad_token = None
    tok.save_pretrained(tmp_path)
    with pytest.warns(UserWarning, match="no pad token"):
        loaded = load_tokenizer(str(tmp_path))
    assert loaded.pad_token == loaded.eos_token == "</s>"
    assert loaded.pad_token_id == loaded.eos_token_id


@pytest.mark.parametrize("bad", ["/definitely/not/here", "./relative/missing/dir/x", "no-such-org/no-such-model"])
def test_bad_paths_raise_model_error_naming_them(bad):
    with pytest.raises(ModelError, match="neither a local folder nor a (valid|reachable)") as info:
        load_tokenizer(bad)
    assert bad in str(info.value)
    with pytest.raises(ModelError) as info:
        load_causal_lm(ModelSpec(name_or_path=bad))
    assert bad in str(info.value)


def test_missing_init_config_folder_raises_model_error(tmp_path):
    missing = str(tmp_path / "missing_config")
    with pytest.raises(ModelError, match="missing_config"):
        load_causal_lm(ModelSpec(init_config=missing))


def test_causal_lm_loads_in_train_mode_with_dtype(tiny_llama_dir):
    model = load_causal_lm(ModelSpec(name_or_path=str(tiny_llama_dir), dtype="bfloat16", attn_implementation="eager"))
    assert model.training
    assert model.dtype == torch.bfloat16
    assert model.config._attn_implementation == "eager"
    trainable, total = count_parameters(model)
    assert trainable == total == sum(p.numel() for p in model.parameters())


def test_init_config_dict_builds_random_model_of_requested_size():
    model = load_causal_lm(ModelSpec(init_config=dict(TINY_CONFIG)))
    cfg = model.config
    assert (cfg.hidden_size, cfg.num_hidden_layers, cfg.num_key_value_heads, cfg.vocab_size) == (16, 3, 1, 64)
    assert len(model.model.layers) == 3
    assert model.get_input_embeddings().weight.shape == (64, 16)
    assert model.training


def test_init_config_dict_overrides_pretrained_config(tiny_llama_dir):
    model = load_causal_lm(ModelSpec(name_or_path=str(tiny_llama_dir), init_config={"num_hidden_layers": 1}))
    assert model.config.num_hidden_layers == 1 and len(model.model.layers) == 1
    assert model.config.hidden_size == 32  # kept from the folder's config


def test_init_config_dict_needs_model_type():
    with pytest.raises(ConfigError, match="model_type"):
        load_causal_lm(ModelSpec(init_config={"hidden_size": 16}))


def test_tokenizer_grows_embeddings_and_sets_pad_id(tiny_llama_dir):
    tok = load_tokenizer(str(tiny_llama_dir))
    tok.add_tokens(["<tool>", "</tool>", "<think>"])
    model = load_causal_lm(ModelSpec(init_config=dict(TINY_CONFIG)), tokenizer=tok)
    assert model.get_input_embeddings().weight.shape[0] == len(tok) > 64
    assert model.get_output_embeddings().weight.shape[0] == len(tok)
    assert model.config.pad_token_id == tok.pad_token_id


def test_gradient_checkpointing_with_lora_still_backprops(tiny_llama_dir):
    spec = ModelSpec(name_or_path=str(tiny_llama_dir), gradient_checkpointing=True, lora=LoraSpec(r=2, dropout=0.0))
    model = load_causal_lm(spec)
    base = model.get_base_model()
    assert getattr(base, "is_activation_checkpointing", None) or base.is_gradient_checkpointing
    ids = torch.randint(3, 100, (2, 6))
    model(input_ids=ids, labels=ids).loss.backward()
    grads = [p.grad for n, p in model.named_parameters() if "lora_B" in n]
    assert grads and all(g is not None and g.abs().sum() > 0 for g in grads)
    trainable, total = count_parameters(model)
    assert 0 < trainable < total


def test_quantization_without_lora_is_config_error(tiny_llama_dir):
    with pytest.raises(ConfigError, match="lora"):
        load_causal_lm(ModelSpec(name_or_path=str(tiny_llama_dir), quantization=QuantizationSpec()))


def test_missing_source_is_config_error():
    with pytest.raises(ConfigError):
        load_causal_lm(ModelSpec())


def test_sequence_classifier_scalar_head_with_pad_id(tiny_llama_dir):
    tok = load_tokenizer(str(tiny_llama_dir))
    model = load_sequence_classifier(ModelSpec(name_or_path=str(tiny_llama_dir), lora=LoraSpec(r=2)), tokenizer=tok)
    assert model.training and model.config.pad_token_id == tok.pad_token_id
    batch = tok(["hello world", "spring wind brings flowers"], return_tensors="pt", padding=True)
    scores = model(**batch).logits
    assert scores.shape == (2, 1)
    # The new score head must train along with the adapter, else the reward model learns nothing.
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert any("score" in n for n in trainable) and any("lora_A" in n for n in trainable)


def test_sequence_classifier_pad_id_falls_back_to_eos(tiny_llama_dir):
    from transformers import AutoConfig

    cfg = AutoConfig.from_pretrained(tiny_llama_dir)
    cfg.pad_token_id = None
    with pytest.warns(UserWarning, match="eos_token_id"):
        model = load_sequence_classifier(ModelSpec(init_config=cfg.to_dict()), num_labels=3)
    assert model.config.pad_token_id == 2 and model.config.num_labels == 3
