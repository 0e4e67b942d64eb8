"""SFTModule pieces: packed and padded batches give the same loss; predict rows; frozen params skipped."""

import pytest
import torch

from rlhf_lightning.data.collators import PackedCollator, PaddingCollator
from rlhf_lightning.data.packing import pack
from rlhf_lightning.losses.language_model import token_nll
from rlhf_lightning.models.spec import ModelSpec
from rlhf_lightning.modules.sft import SFTModule


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_packed_and_padded_batches_give_the_same_loss(tiny_llama_dir, attn):
    module = SFTModule(ModelSpec(name_or_path=str(tiny_llama_dir), attn_implementation=attn))
    module.configure_model()
    module.model.eval()
    g = torch.Generator().manual_seed(1)
    examples = []
    for n in (9, 4, 12, 6):
        ids = torch.randint(3, module.model.config.vocab_size, (n,), generator=g).tolist()
        examples.append({"input_ids": ids, "labels": [-100] * 2 + ids[2:]})
    padded = PaddingCollator(0)(examples)
    packed = PackedCollator(0)(pack(examples, max_length=16))
    with torch.no_grad():
        a = token_nll(module(padded), padded["labels"])
        b = token_nll(module(packed), packed["labels"])
    assert a[1] == b[1]  # same target tokens
    torch.testing.assert_close(a[0], b[0], atol=1e-4, rtol=1e-5)


def test_optimizer_covers_only_trainable_parameters(tiny_llama_dir):
    from rlhf_lightning.models.spec import LoraSpec

    module = SFTModule(ModelSpec(name_or_path=str(tiny_llama_dir), lora=LoraSpec(r=2)))
    module.configure_model()
    opt = module.configure_optimizers()
    n_opt = sum(p.numel() for group in opt.param_groups for p in group["params"])
    assert n_opt == sum(p.numel() for p in module.parameters() if p.requires_grad) < sum(
        p.numel() for p in module.parameters())
