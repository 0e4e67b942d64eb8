"""PPOModule on a tiny Llama: the loop's step count, frozen reference, estimators, critic, bad input."""

from __future__ import annotations

import math

import pytest
import torch
from lightning.pytorch import seed_everything

from rlhf_lightning.algorithms.advantages import GRPO, RLOO, ReinforcePlusPlus
from rlhf_lightning.errors import ConfigError, PluginError
from rlhf_lightning.models.spec import LoraSpec, ModelSpec
from rlhf_lightning.modules.ppo.config import KLSpec, PPOLoopSpec, RewardShapingSpec
from rlhf_lightning.rewards.base import RewardFunction
from rlhf_lightning.rollout.generation import GenerationSpec
from tests.modules.ppo_helpers import CharLength, make_data, make_module, make_trainer, weights, write_prompts


@pytest.fixture()
def prompts(tmp_path):
    return write_prompts(tmp_path / "prompts.jsonl", n=8)


def fit(module, data, root, max_steps=-1, **kwargs):
    seed_everything(0)
    trainer = make_trainer(root, max_steps, **kwargs)
    trainer.fit(module, data)
    return trainer


def test_optimizer_steps_per_training_step_is_epochs_times_minibatches(tiny_llama_dir, prompts, tmp_path):
    """2 prompt batches × (3 epochs × 2 minibatches) = 12 optimizer steps, counted by the optimizer itself."""
    module = make_module(tiny_llama_dir, [CharLength()], ppo=PPOLoopSpec(epochs=3, num_minibatches=2),
                         generation=GenerationSpec(max_new_tokens=4, do_sample=True, num_return_sequences=2))
    calls = []
    trainer = make_trainer(tmp_path, -1, max_epochs=1, limit_train_batches=2)
    module.configure_model()
    real_configure = module.configure_optimizers

    def counting():
        opt = real_configure()
        step = opt.step

        def counted(*a, **k):
            calls.append(1)
            return step(*a, **k)
        opt.step = counted
        return opt
    module.configure_optimizers = counting
    seed_everything(0)
    trainer.fit(module, make_data(tiny_llama_dir, prompts))
    assert len(calls) == 12
    assert module.optimizer_steps == 12 and trainer.global_step == 12
    assert module.rollouts_done == 2
    assert trainer.logged_metrics["train/optimizer_steps"] == 12


def test_frozen_reference_does_not_move_and_policy_does(tiny_llama_dir, prompts, tmp_path):
    module = make_module(tiny_llama_dir, [CharLength()], ppo=PPOLoopSpec(epochs=2))
    module.configure_model()
    ref_before, pol_before = weights(module.ref_model), weights(module.model)
    fit(module, make_data(tiny_llama_dir, prompts), tmp_path, max_steps=4)
    assert all(torch.equal(v, module.ref_model.state_dict()[k]) for k, v in ref_before.items())
    assert all(not p.requires_grad for p in module.ref_model.parameters())
    moved = [k for k, v in pol_before.items() if not torch.equal(v, module.model.state_dict()[k])]
    assert moved, "the policy did not change"
    assert module.value_head is not None and module.value_head.linear.weight.abs().sum() > 0
    assert math.isfinite(float(module.trainer.logged_metrics["train/value_loss"]))


def test_lora_reference_is_the_adapter_disabled_policy(tiny_llama_dir, prompts, tmp_path):
    spec = ModelSpec(name_or_path=str(tiny_llama_dir), lora=LoraSpec(r=4, alpha=8, dropout=0.1))
    module = make_module(tiny_llama_dir, [CharLength()], policy=spec, ppo=PPOLoopSpec(epochs=2))
    module.configure_model()
    assert module.ref_model is None  # no second copy of the weights
    assert all(m.p == 0.0 for m in module.model.modules() if isinstance(m, torch.nn.Dropout))
    base = {k: v.clone() for k, v in module.model.state_dict().items() if "lora_" not in k}
    lora = {k: v.clone() for k, v in module.model.state_dict().items() if "lora_B" in k}
    fit(module, make_data(tiny_llama_dir, prompts), tmp_path, max_steps=4)
    state = module.model.state_dict()
    assert all(torch.equal(v, state[k]) for k, v in base.items())
    assert any(not torch.equal(v, state[k]) for k, v in lora.items())


@pytest.mark.parametrize("estimator", [GRPO(), RLOO(), ReinforcePlusPlus()], ids=["grpo", "rloo", "reinforce_pp"])
def test_critic_free_estimators_build_no_critic(tiny_llama_dir, prompts, tmp_path, estimator):
    module = make_module(tiny_llama_dir, [CharLength()], advantage=estimator, kl=KLSpec(coef=0.1, estimator="k3",
                         apply_to="loss" if isinstance(estimator, GRPO) else "reward"),
                         generation=GenerationSpec(max_new_tokens=4, do_sample=True, num_return_sequences=2))
    trainer = fit(module, make_data(tiny_llama_dir, prompts), tmp_path, max_steps=1)
    assert module.value_head is None and module.critic_model is None
    assert "train/value_loss" not in trainer.logged_metrics
    assert trainer.global_step == 1
    if isinstance(estimator, GRPO):
        assert "train/kl_loss" in trainer.logged_metrics


def test_group_estimator_needs_several_samples_per_prompt(tiny_llama_dir):
    with pytest.raises(ConfigError, match="num_return_sequences"):
        make_module(tiny_llama_dir, [CharLength()], advantage=GRPO())


def test_adaptive_kl_controller_moves(tiny_llama_dir, prompts, tmp_path):
    module = make_module(tiny_llama_dir, [CharLength()], kl=KLSpec(coef=0.1, target=0.001, horizon=10))
    fit(module, make_data(tiny_llama_dir, prompts), tmp_path, max_steps=3)
    assert module.kl_ctl.value != 0.1


class NaNReward(RewardFunction):
    def __call__(self, prompts, completions, **columns):
        return [float("nan")] + [1.0] * (len(completions) - 1)


def test_nan_reward_is_an_error_naming_the_plugin(tiny_llama_dir, prompts, tmp_path):
    module = make_module(tiny_llama_dir, [CharLength(), NaNReward()], reward_names=["len", "broken_rm"])
    with pytest.raises(PluginError, match="broken_rm.*non-finite.*sample 0"):
        fit(module, make_data(tiny_llama_dir, prompts), tmp_path, max_steps=1)


def test_nan_reward_samples_can_be_skipped(tiny_llama_dir, prompts, tmp_path):
    module = make_module(tiny_llama_dir, [NaNReward()], shaping=RewardShapingSpec(on_invalid="skip"))
    trainer = fit(module, make_data(tiny_llama_dir, prompts), tmp_path, max_steps=1)
    assert trainer.logged_metrics["train/reward/invalid"] == 1
    assert trainer.logged_metrics["train/skipped_samples"] == 1
    assert trainer.global_step == 1


def test_empty_generations_are_handled(tiny_llama_dir, prompts, tmp_path, monkeypatch):
    """A policy that ends every completion at once (EOS first): one real token, empty text, no crash."""
    import rlhf_lightning.rollout.samples as ro

    def eos_at_once(model, tokenizer, input_ids, attention_mask, spec):
        n = input_ids.shape[0] * spec.num_return_sequences
        ids = torch.full((n, 3), tokenizer.pad_token_id)
        ids[:, 0] = tokenizer.eos_token_id
        return ids, [""] * n
    monkeypatch.setattr(ro, "generate", eos_at_once)
    module = make_module(tiny_llama_dir, [CharLength()])
    trainer = fit(module, make_data(tiny_llama_dir, prompts), tmp_path, max_steps=2)
    m = trainer.logged_metrics
    assert m["train/response_length"] == 1 and m["train/finished_rate"] == 1 and m["train/empty_rate"] == 1
    assert math.isfinite(float(m["train/loss"]))


def test_too_many_minibatches_for_the_rollout_is_an_error(tiny_llama_dir, prompts, tmp_path):
    module = make_module(tiny_llama_dir, [CharLength()], ppo=PPOLoopSpec(num_minibatches=3))
    with pytest.raises(ConfigError, match="num_minibatches"):
        fit(module, make_data(tiny_llama_dir, prompts), tmp_path, max_steps=1)


def test_no_rewards_is_a_config_error(tiny_llama_dir):
    with pytest.raises(ConfigError, match="rewards"):
        make_module(tiny_llama_dir, [])


def test_sample_table_goes_to_tensorboard(tiny_llama_dir, prompts, tmp_path):
    import tensorboard  # noqa: F401 - a dependency of the package: missing is a failure, not a skip
    from lightning.pytorch.loggers import TensorBoardLogger

    logger = TensorBoardLogger(str(tmp_path), name="tb")
    texts = []
    module = make_module(tiny_llama_dir, [CharLength()], log_samples_every_n_steps=1, num_logged_samples=2)
    trainer = make_trainer(tmp_path, 2, logger=logger)
    logger.experiment.add_text = lambda tag, text, global_step=None: texts.append((tag, text))
    seed_everything(0)
    trainer.fit(module, make_data(tiny_llama_dir, prompts))
    assert len(texts) == 2 and texts[0][0] == "samples"
    assert texts[0][1].count("\n") == 3  # header, rule, 2 rows


def test_sample_rows_go_to_the_csv_logger_as_jsonl(tiny_llama_dir, prompts, tmp_path):
    import json

    from lightning.pytorch.loggers import CSVLogger

    logger = CSVLogger(str(tmp_path), name="csv")
    module = make_module(tiny_llama_dir, [CharLength()], log_samples_every_n_steps=1, num_logged_samples=2)
    seed_everything(0)
    make_trainer(tmp_path, 2, logger=logger).fit(module, make_data(tiny_llama_dir, prompts))
    with open(f"{logger.log_dir}/samples.jsonl", encoding="utf-8") as f:
        rows = [json.loads(line) for line in f]
    steps = [r["step"] for r in rows]
    assert len(rows) == 4 and steps[0] == steps[1] < steps[2] == steps[3]  # 2 rows at each of 2 logging steps
    assert all(set(r) == {"step", "prompt", "completion", "advantage"} and r["prompt"] for r in rows)


def test_qlora_lora_grads_survive_the_rollout(tiny_tokenizer_dir, tmp_path):
    """4-bit base + LoRA: after generate() (an eval-mode forward) every LoRA-B still gets a gradient."""
    import bitsandbytes  # noqa: F401 - a dependency of the package: missing is a failure, not a skip
    from transformers import AutoTokenizer

    from rlhf_lightning.models.spec import QuantizationSpec
    from tests import tiny
    from tests.modules.test_ppo_constraints import first_batch

    vocab = len(AutoTokenizer.from_pretrained(tiny_tokenizer_dir))
    model_dir = tiny.build_llama(tmp_path / "llama64", vocab_size=vocab, hidden_size=64, tokenizer_dir=tiny_tokenizer_dir)
    spec = ModelSpec(name_or_path=str(model_dir), lora=LoraSpec(r=4, dropout=0.0), quantization=QuantizationSpec())
    module = make_module(model_dir, [CharLength()], policy=spec)
    module.configure_model()
    assert module.ref_model is None
    seed_everything(0)
    r, _ = module.make_experience(first_batch(model_dir, tmp_path))
    loss, _ = module.minibatch_loss(r, torch.arange(len(r)))
    loss.backward()
    b_grads = [p.grad for n, p in module.model.named_parameters() if "lora_B" in n]
    assert len(b_grads) == 14
    assert all(g is not None and g.abs().sum() > 0 for g in b_grads)


def test_separate_critic_from_a_sequence_classifier(tiny_llama_dir, prompts, tmp_path):
    """critic.model: a 1-label sequence classifier (e.g. the RM export) gives per-token values; own lr."""
    from rlhf_lightning.modules.ppo.config import CriticSpec

    module = make_module(tiny_llama_dir, [CharLength()],
                         critic=CriticSpec(model=ModelSpec(name_or_path=str(tiny_llama_dir)), lr=0.05))
    trainer = fit(module, make_data(tiny_llama_dir, prompts), tmp_path, max_steps=2)
    assert module.value_head is None and module.critic_model is not None
    groups = trainer.optimizers[0].param_groups
    assert [g["lr"] for g in groups] == [0.01, 0.05]
    assert sum(p.numel() for p in groups[1]["params"]) == sum(
        p.numel() for p in module.critic_model.parameters() if p.requires_grad)
    assert math.isfinite(float(trainer.logged_metrics["train/value_loss"]))


def test_prompt_budget_plus_new_tokens_must_fit_the_context(tiny_llama_dir, prompts, tmp_path):
    module = make_module(tiny_llama_dir, [CharLength()], generation=GenerationSpec(max_new_tokens=250))
    with pytest.raises(ConfigError, match="exceeds the policy's context"):
        fit(module, make_data(tiny_llama_dir, prompts), tmp_path, max_steps=1)


@pytest.mark.slow
def test_grpo_raises_a_rule_reward(tiny_llama_dir, prompts, tmp_path):
    """Behaviour, not a smoke test (about 40 s): 30 GRPO rollouts raise the mean reward (completion length in characters)."""
    module = make_module(tiny_llama_dir, [CharLength()], advantage=GRPO(),
                         kl=KLSpec(coef=0.01, estimator="k3", apply_to="loss"), ppo=PPOLoopSpec(epochs=2),
                         generation=GenerationSpec(max_new_tokens=6, do_sample=True, num_return_sequences=4),
                         optimizer=lambda params: torch.optim.AdamW(params, lr=3e-3))
    rewards = []
    make_experience = module.make_experience

    def recording(batch):
        r, logs = make_experience(batch)
        rewards.append(logs["reward"])
        return r, logs
    module.make_experience = recording
    fit(module, make_data(tiny_llama_dir, prompts, batch_size=4), tmp_path, max_steps=2 * 30)
    first, last = sum(rewards[:5]) / 5, sum(rewards[-5:]) / 5
    assert len(rewards) == 30 and last > first + 0.2, (first, last)


def test_sampled_validation_repeats_its_draws_and_leaves_training_randomness_alone(tiny_llama_dir, prompts, tmp_path):
    """val_generation with sampling: two validations of the same policy score the same samples (common
    random numbers), and the global random stream is where it was before validating."""
    seed_everything(0)
    spec = GenerationSpec(max_new_tokens=6, do_sample=True, num_return_sequences=3)
    module = make_module(tiny_llama_dir, val_generation=spec)
    data = make_data(tiny_llama_dir, prompts, val=str(prompts))
    trainer = make_trainer(tmp_path, 1)
    greedy = make_module(tiny_llama_dir)
    trainer.validate(greedy, datamodule=data, verbose=False)  # builds the models
    torch.manual_seed(123)
    trainer.validate(greedy, datamodule=data, verbose=False)
    after_greedy = torch.rand(4)  # (Lightning's loader iterator draws its seed either way)
    first = trainer.validate(module, datamodule=data, verbose=False)[0]
    torch.manual_seed(123)
    second = trainer.validate(module, datamodule=data, verbose=False)[0]
    assert torch.equal(torch.rand(4), after_greedy)  # sampling drew from its own forked stream
    assert first["val/reward"] == second["val/reward"] and first["val/response_length"] == second["val/response_length"]
    other = trainer.validate(make_module(tiny_llama_dir, val_generation=spec, val_seed=1), datamodule=data,
                             verbose=False)[0]
    assert other["val/reward"] != first["val/reward"]  # the draws do depend on val_seed
