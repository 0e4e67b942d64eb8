"""QLoRA on CPU: 4-bit loading, and the AVX512-BF16 repacking trap that silently kills LoRA gradients.

The trap (see ``rlhf_lightning/models/quantization.py``): an eval-mode, no-grad forward on CPU makes
bitsandbytes repack ``Linear4bit`` weights for its bf16 inference kernel, which has no autograd
kernel; every later backward drops the gradient through those layers. The model here is 64 wide
because bitsandbytes' repacking needs ``in_features`` to be a multiple of its 64-element block.
"""

from __future__ import annotations

import warnings

import bitsandbytes as bnb  # a dependency of the package: imported, not importorskip'd (missing = failure)
import pytest
import torch
from transformers import AutoTokenizer

from rlhf_lightning.models.loading import count_parameters, load_causal_lm
from rlhf_lightning.models.quantization import guard_linear4bit_on_cpu, is_quantized_4bit
from rlhf_lightning.models.spec import LoraSpec, ModelSpec, QuantizationSpec
from tests import tiny

N_LINEAR = 2 * 7  # two Llama layers x (q, k, v, o, gate, up, down)


@pytest.fixture(scope="module")
def llama64_dir(tmp_path_factory, tiny_tokenizer_dir):
    vocab = len(AutoTokenizer.from_pretrained(tiny_tokenizer_dir))
    return tiny.build_llama(tmp_path_factory.mktemp("llama64"), vocab_size=vocab, hidden_size=64,
                            tokenizer_dir=tiny_tokenizer_dir)


def _qlora(path) -> torch.nn.Module:
    spec = ModelSpec(name_or_path=str(path), lora=LoraSpec(r=4, dropout=0.0), quantization=QuantizationSpec())
    return load_causal_lm(spec)


def _lora_params(model) -> dict[str, torch.nn.Parameter]:
    return {n: p for n, p in model.named_parameters() if "lora_" in n}


def _generate_then_backward(model) -> dict[str, torch.Tensor]:
    """What a PPO step does: eval + generate, then train + forward/backward. Returns the LoRA grads."""
    torch.manual_seed(0)
    prompt = torch.randint(3, 300, (2, 6))
    model.eval()
    with torch.no_grad():
        sequences = model.generate(input_ids=prompt, max_new_tokens=3, do_sample=False, pad_token_id=0)
    model.train()
    model.zero_grad(set_to_none=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch's "autograd kernel was not registered" (trap case)
        model(input_ids=sequences, labels=sequences).loss.backward()
    return {n: p.grad for n, p in _lora_params(model).items()}


def _nonzero_b_grads(grads) -> int:
    # LoRA B starts at zero, so A's first gradient is zero by construction: only B tells the story.
    return sum(1 for n, g in grads.items() if "lora_B" in n and g is not None and g.abs().sum() > 0)


def test_qlora_loads_4bit_guarded_and_counts_unpacked_params(llama64_dir):
    model = _qlora(llama64_dir)
    layers = [m for m in model.modules() if isinstance(m, bnb.nn.Linear4bit)]
    assert len(layers) == N_LINEAR and is_quantized_4bit(model)
    assert all(m.support_avx512bf16_for_cpu is False for m in layers)
    assert guard_linear4bit_on_cpu(model) == N_LINEAR
    assert model.training
    trainable, total = count_parameters(model)
    assert trainable == sum(p.numel() for p in _lora_params(model).values())
    full, _ = count_parameters(load_causal_lm(ModelSpec(name_or_path=str(llama64_dir))))
    assert total == full + trainable  # 4-bit weights counted at their real (unpacked) size


def test_lora_trains_after_generate_with_guard(llama64_dir):
    model = _qlora(llama64_dir)
    before = {n: p.detach().clone() for n, p in _lora_params(model).items()}
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.5)
    grads = _generate_then_backward(model)
    assert _nonzero_b_grads(grads) == N_LINEAR
    optimizer.step()
    _generate_then_backward(model)  # second step: now that B != 0, A gets gradients too
    optimizer.step()
    changed = [n for n, p in _lora_params(model).items() if not torch.equal(p, before[n])]
    assert len(changed) == 2 * N_LINEAR
    packed = [m for m in model.modules() if isinstance(m, bnb.nn.Linear4bit)
              and getattr(m.weight.quant_state, "packing_format_for_cpu", False)]
    assert not packed


@pytest.mark.skipif(not bnb.functional.has_avx512bf16(),
                    reason="this CPU has no AVX512-BF16, so bitsandbytes never repacks: the trap cannot occur")
def test_without_guard_generate_silently_kills_lora_grads_and_guard_repairs(llama64_dir):
    model = _qlora(llama64_dir)
    for module in model.modules():
        if isinstance(module, bnb.nn.Linear4bit):
            module.support_avx512bf16_for_cpu = True  # undo the loader's guard: bitsandbytes' default here
    grads = _generate_then_backward(model)
    # Backward through the repacked layers yields no input gradient: only the LoRA adapters with no
    # quantized layer above them in the graph still learn; the rest get exactly zero, no error.
    assert 0 < _nonzero_b_grads(grads) < N_LINEAR
    assert all(g is not None for g in grads.values())  # "silently": no None, just zeros

    # The guard also repairs a model whose weights were already repacked.
    assert guard_linear4bit_on_cpu(model) == N_LINEAR
    assert _nonzero_b_grads(_generate_then_backward(model)) == N_LINEAR


def test_guard_on_full_precision_model_touches_nothing(tiny_llama_dir):
    model = load_causal_lm(ModelSpec(name_or_path=str(tiny_llama_dir)))
    assert guard_linear4bit_on_cpu(model) == 0 and not is_quantized_4bit(model)


# --------------------------------------------------------------------------- 8-bit (GPU only)


def test_8bit_spec_parses_and_maps_to_bitsandbytes_config():
    """Written against transformers' documented BitsAndBytesConfig: load_in_8bit + llm_int8_threshold."""
    from rlhf_lightning.models.quantization import bnb_config

    spec = QuantizationSpec(load_in_8bit=True, int8_threshold=5.0)
    assert spec.bits == 8
    config = bnb_config(spec)
    assert config.load_in_8bit and not config.load_in_4bit and config.llm_int8_threshold == 5.0
    assert QuantizationSpec().bits == 4 and QuantizationSpec(load_in_4bit=False).bits is None
    assert bnb_config(QuantizationSpec()).load_in_4bit  # the default stays the QLoRA recipe


@pytest.mark.parametrize("kwargs, option", [
    ({"load_in_8bit": True, "load_in_4bit": True}, "load_in_8bit"),
    ({"load_in_8bit": True, "int8_threshold": 0.0}, "int8_threshold"),
])
def test_bad_8bit_options(kwargs, option):
    from rlhf_lightning.errors import InvalidOption

    with pytest.raises(InvalidOption, match=f"^{option}: "):
        QuantizationSpec(**kwargs)


@pytest.mark.skipif(torch.cuda.is_available(), reason="the CPU refusal")
def test_8bit_on_cpu_is_refused_naming_the_option(llama64_dir):
    from rlhf_lightning.errors import ConfigError

    spec = ModelSpec(name_or_path=str(llama64_dir), lora=LoraSpec(r=4), quantization=QuantizationSpec(load_in_8bit=True))
    with pytest.raises(ConfigError, match=r"^quantization\.load_in_8bit: 8-bit bitsandbytes loading needs a CUDA GPU"):
        load_causal_lm(spec)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_8bit_lora_trains_on_gpu(llama64_dir):
    """On a CUDA machine: the base loads as bitsandbytes Linear8bitLt, only LoRA trains, gradients reach every
    LoRA B, and a merged export goes through the full-precision re-load (not the int8 weights)."""
    from rlhf_lightning.models.export import export_pretrained
    from rlhf_lightning.models.quantization import is_quantized

    spec = ModelSpec(name_or_path=str(llama64_dir), lora=LoraSpec(r=4, dropout=0.0),
                     quantization=QuantizationSpec(load_in_8bit=True), extra_kwargs={"device_map": {"": 0}})
    model = load_causal_lm(spec)
    layers = [m for m in model.modules() if type(m).__name__ == "Linear8bitLt"]
    assert len(layers) == N_LINEAR and is_quantized(model)
    trainable, total = count_parameters(model)
    assert 0 < trainable < total
    ids = torch.randint(3, 300, (2, 8), device="cuda")
    model(input_ids=ids, labels=ids).loss.backward()
    grads = {n: p.grad for n, p in _lora_params(model).items()}
    assert _nonzero_b_grads(grads) == N_LINEAR
    import tempfile

    with tempfile.TemporaryDirectory() as out:
        export_pretrained(model, None, out, merge_lora=True, base_spec=spec)
        from transformers import AutoModelForCausalLM

        merged = AutoModelForCausalLM.from_pretrained(out)
        assert not is_quantized(merged)
