"""Sampling with common random numbers, and the sequence log-probs behind the KL to the baseline."""

from __future__ import annotations

import pytest
import torch

from rlhf_lightning.evaluation.prompts import prepare_rows, prompt_batches
from rlhf_lightning.evaluation.sampling import check_generation, evaluate_policy, sequence_logps, with_draws
from rlhf_lightning.models.loading import load_causal_lm, load_tokenizer
from rlhf_lightning.models.spec import ModelSpec
from rlhf_lightning.rewards.rules import LengthReward
from rlhf_lightning.rollout.generation import GenerationSpec
from rlhf_lightning.rollout.samples import Rollout, completion_mask, position_ids_of

PROMPTS = [{"prompt": "Write a poem about spring.", "topic": "spring"},
           {"prompt": "请解释什么是人工智能。", "topic": "ai"},
           {"prompt": "Explain gravity.", "topic": "physics"}]
SPEC = with_draws(GenerationSpec(max_new_tokens=6, do_sample=True), 3)


def _setup(path):
    tokenizer = load_tokenizer(str(path), padding_side="left")
    rows = prepare_rows(PROMPTS, tokenizer, source="prompts")
    batches, _ = prompt_batches(rows, tokenizer, batch_size=2, max_prompt_length=64)
    return tokenizer, batches


def _model(path, tokenizer):
    return load_causal_lm(ModelSpec(name_or_path=str(path)), tokenizer=tokenizer).eval()


@pytest.fixture(scope="module")
def models(tiny_llama_dir, tiny_llama_copy_dir, other_llama_dir):
    tokenizer, batches = _setup(tiny_llama_dir)
    return (tokenizer, batches, _model(tiny_llama_dir, tokenizer), _model(tiny_llama_copy_dir, tokenizer),
            _model(other_llama_dir, tokenizer))


def test_identical_policies_draw_identical_answers_and_have_zero_kl(models):
    tokenizer, batches, base, copy, _ = models
    a = evaluate_policy(base, tokenizer, batches, SPEC, seed=0)
    b = evaluate_policy(copy, tokenizer, batches, SPEC, seed=0, baseline=base)
    assert len(a.completions) == len(PROMPTS) * 3
    assert b.completions == a.completions and b.lengths == a.lengths
    assert b.log_ratios == [0.0] * len(a.completions)
    assert a.log_ratios == [0.0] * len(a.completions)  # the baseline itself: 0 without a forward pass
    # sampling, not greedy: the draws of one prompt are not all the same answer
    assert len(set(a.completions[:3])) > 1


def test_answers_do_not_depend_on_what_was_evaluated_before(models):
    """Common random numbers: a policy alone, after another policy, or after the caller drew random
    numbers gets the same answers, and the caller's random stream is left where it was."""
    tokenizer, batches, base, _, other = models
    alone = evaluate_policy(base, tokenizer, batches, SPEC, seed=0)
    evaluate_policy(other, tokenizer, batches, SPEC, seed=0, baseline=base)
    after = evaluate_policy(base, tokenizer, batches, SPEC, seed=0)
    assert after.completions == alone.completions
    torch.manual_seed(7)
    expected = torch.rand(3)
    torch.manual_seed(7)
    evaluate_policy(base, tokenizer, batches, SPEC, seed=0)
    assert torch.equal(torch.rand(3), expected)
    assert evaluate_policy(base, tokenizer, batches, SPEC, seed=1).completions != alone.completions


def test_different_policies_differ_and_get_scored(models):
    tokenizer, batches, base, _, other = models
    reward = LengthReward(target=3, unit="chars")
    a = evaluate_policy(base, tokenizer, batches, SPEC, seed=0, rewards=[("len", reward)])
    b = evaluate_policy(other, tokenizer, batches, SPEC, seed=0, baseline=base, rewards=[("len", reward)])
    assert b.completions != a.completions
    assert any(r != 0.0 for r in b.log_ratios)
    assert b.rewards["len"] == pytest.approx(reward(["p"] * len(b.completions), b.completions))


@torch.no_grad()
def _manual_logp(model, prompt_ids: list[int], completion: list[int]) -> float:
    """Σ_t log softmax(logits of prompt + completion[:t])[completion[t]] on the unpadded sequence."""
    ids = torch.tensor([prompt_ids + completion])
    logps = torch.log_softmax(model(input_ids=ids).logits[0].double(), dim=-1)
    start = len(prompt_ids)
    return sum(float(logps[start + t - 1, tok]) for t, tok in enumerate(completion))


def test_sequence_logps_sum_completion_tokens_up_to_and_including_eos(models):
    """Row 0 stops at EOS (the pad token after it is not scored), row 1 runs to the width; both
    against a plain forward over the unpadded prompt + completion."""
    tokenizer, batches, base, _, _ = models
    batch = batches[0]  # two left-padded prompts of different lengths
    eos, pad = tokenizer.eos_token_id, tokenizer.pad_token_id
    assert eos != pad
    completion_ids = torch.tensor([[40, 41, eos, pad], [50, 51, 52, 53]])
    mask, finished = completion_mask(completion_ids, [eos], pad)
    assert mask.tolist() == [[True, True, True, False], [True] * 4] and finished.tolist() == [True, False]
    attention = torch.cat([batch["attention_mask"], mask.long()], dim=1)
    rollout = Rollout(input_ids=torch.cat([batch["input_ids"], completion_ids], dim=1), attention_mask=attention,
                      position_ids=position_ids_of(attention), prompt_width=batch["input_ids"].shape[1],
                      completion_ids=completion_ids, mask=mask, finished=finished, group_ids=torch.arange(2),
                      prompts=batch["prompt"], completions=["", ""])
    got = sequence_logps(base, rollout)
    for row, completion in enumerate([[40, 41, eos], [50, 51, 52, 53]]):
        prompt = batch["input_ids"][row][batch["attention_mask"][row].bool()].tolist()
        assert float(got[row]) == pytest.approx(_manual_logp(base, prompt, completion), abs=1e-4)


def test_check_generation_names_what_is_not_plain_sampling():
    assert check_generation(GenerationSpec(do_sample=True)) is None
    note = check_generation(GenerationSpec(do_sample=True, temperature=0.7, top_k=20))
    assert "temperature 0.7" in note and "top_k 20" in note
    assert "greedy" in check_generation(GenerationSpec(do_sample=False))
