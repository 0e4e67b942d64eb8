"""Bad options fail when the config is parsed: exit status 2, one message naming the option by its
config path, no traceback, and no model loaded (the policy folder does not even exist).

jsonargparse builds plugins and option dataclasses while it resolves union/subclass types and wraps
their ConfigError in "Does not validate against any of the Union subtypes" (a traceback, exit 1);
the CLI unwraps it (rlhf_lightning/config_errors.py).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rlhf_lightning.cli import main
from tests.cli.test_dpo_cli import dpo_config
from tests.cli.test_ppo_cli import ppo_config

M = "model.init_args"
GAE = {"class_path": "gae"}

#: (id, stage, overrides, option path named in the message, words of the allowed range)
BAD_OPTIONS = [
    ("gae-gamma", "ppo", {f"{M}.advantage": {"class_path": "gae", "init_args": {"gamma": 1.5}}},
     f"{M}.advantage.init_args.gamma", "[0.0, 1.0]"),
    ("gae-lambda", "ppo", {f"{M}.advantage": {"class_path": "gae", "init_args": {"lam": -0.1}}},
     f"{M}.advantage.init_args.lam", "[0.0, 1.0]"),
    ("reinforce-gamma", "ppo", {f"{M}.advantage": {"class_path": "reinforce_pp", "init_args": {"gamma": 2.0}}},
     f"{M}.advantage.init_args.gamma", "[0.0, 1.0]"),
    ("grpo-eps", "ppo", {f"{M}.advantage": {"class_path": "grpo", "init_args": {"eps": 0.0}}},
     f"{M}.advantage.init_args.eps", "> 0"),
    ("kl-coef", "ppo", {f"{M}.kl": {"coef": -0.1}}, f"{M}.kl.coef", ">= 0"),
    ("kl-target", "ppo", {f"{M}.kl": {"coef": 0.1, "target": 0.0}}, f"{M}.kl.target", "> 0"),
    ("clip-eps", "ppo", {f"{M}.ppo": {"clip_eps": 0.0}}, f"{M}.ppo.clip_eps", "> 0"),
    ("num-minibatches", "ppo", {f"{M}.ppo": {"num_minibatches": 0}}, f"{M}.ppo.num_minibatches", ">= 1"),
    ("ppo-epochs", "ppo", {f"{M}.ppo": {"epochs": 0}}, f"{M}.ppo.epochs", ">= 1"),
    ("dual-clip", "ppo", {f"{M}.ppo": {"dual_clip": 0.5}}, f"{M}.ppo.dual_clip", "> 1"),
    ("shaping-clip", "ppo", {f"{M}.shaping": {"clip": 0.0}}, f"{M}.shaping.clip", "> 0"),
    ("critic-coef", "ppo", {f"{M}.advantage": GAE, f"{M}.critic": {"coef": -1.0}}, f"{M}.critic.coef", ">= 0"),
    ("temperature-0-sampling", "ppo",
     {f"{M}.generation": {"max_new_tokens": 4, "do_sample": True, "temperature": 0.0, "num_return_sequences": 2}},
     f"{M}.generation.temperature", "> 0"),
    ("top-p", "ppo",
     {f"{M}.generation": {"max_new_tokens": 4, "do_sample": True, "top_p": 1.5, "num_return_sequences": 2}},
     f"{M}.generation.top_p", "(0.0, 1.0]"),
    ("max-new-tokens", "ppo", {f"{M}.generation": {"max_new_tokens": 0, "num_return_sequences": 2}},
     f"{M}.generation.max_new_tokens", ">= 1"),
    ("min-over-max-new-tokens", "ppo",
     {f"{M}.generation": {"max_new_tokens": 4, "min_new_tokens": 8, "num_return_sequences": 2}},
     f"{M}.generation.min_new_tokens", "max_new_tokens (4)"),
    ("grpo-one-sample-per-prompt", "ppo", {f"{M}.generation": {"max_new_tokens": 4, "num_return_sequences": 1}},
     f"{M}.generation.num_return_sequences", "compares samples of one prompt"),
    ("reward-weights-count", "ppo", {f"{M}.reward_weights": [1.0]}, f"{M}.reward_weights", "one weight per reward"),
    ("lambda-lr", "ppo",
     {f"{M}.constraints": [{"checker": {"class_path": "max_length"}, "mode": "lagrangian", "lambda_lr": 0.0}]},
     f"{M}.constraints.0.lambda_lr", "> 0"),
    ("lambda-max-below-init", "ppo",
     {f"{M}.constraints": [{"checker": {"class_path": "max_length"}, "mode": "lagrangian", "lambda_init": 1.0,
                             "lambda_max": 0.5}]},
     f"{M}.constraints.0.lambda_max", "lambda_init"),
    ("length-reward-target", "ppo",
     {f"{M}.rewards": [{"class_path": "length", "init_args": {"target": 0}}, {"class_path": "keyword",
                                                                              "init_args": {"keywords": ["a"]}}]},
     f"{M}.rewards.0.init_args.target", "> 0"),
    ("weighted-sum-weights", "ppo",
     {f"{M}.rewards": [{"class_path": "weighted_sum", "init_args": {"rewards": [{"class_path": "length"}],
                                                                    "weights": [1.0, 2.0]}}],
      f"{M}.reward_weights": None},
     f"{M}.rewards.0.init_args.weights", "one weight per reward"),
    ("max-length-constraint", "ppo",
     {f"{M}.constraints": [{"checker": {"class_path": "max_length", "init_args": {"max_length": -1}}}]},
     f"{M}.constraints.0.checker.init_args.max_length", ">= 0"),
    ("dpo-beta-0", "dpo", {f"{M}.loss": {"class_path": "sigmoid", "init_args": {"beta": 0.0}}},
     f"{M}.loss.init_args.beta", "> 0"),
    ("rpo-beta-negative", "dpo", {f"{M}.loss": {"class_path": "rpo", "init_args": {"beta": -1.0}}},
     f"{M}.loss.init_args.beta", "> 0"),
    ("label-smoothing", "dpo", {f"{M}.loss": {"class_path": "sigmoid", "init_args": {"label_smoothing": 0.7}}},
     f"{M}.loss.init_args.label_smoothing", "[0.0, 0.5]"),
    ("loss-weights-count", "dpo",
     {f"{M}.loss": {"class_path": "weighted", "init_args": {"losses": [{"class_path": "ipo"}, {"class_path": "nll"}],
                                                            "weights": [1.0]}}},
     f"{M}.loss.init_args.weights", "one weight per loss"),
    ("dpo-generation", "dpo", {f"{M}.generation": {"max_new_tokens": 0}}, f"{M}.generation.max_new_tokens", ">= 1"),
]


def _files(tmp_path: Path) -> dict[str, Path]:
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": f"p{i}", "id": i}) + "\n" for i in range(4)), encoding="utf-8")
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text("".join(json.dumps({"prompt": f"p{i}", "chosen": "yes", "rejected": "no"}) + "\n"
                             for i in range(4)), encoding="utf-8")
    return {"prompts": prompts, "train": pairs, "val": pairs}


@pytest.fixture()
def no_model_loading(monkeypatch):
    """Any attempt to load a model or tokenizer fails the test."""
    from rlhf_lightning.models import loading

    def refuse(*args, **kwargs):
        raise AssertionError("a model or tokenizer was loaded before the bad option was reported")

    for name in ("load_causal_lm", "load_sequence_classifier", "load_tokenizer"):
        if hasattr(loading, name):
            monkeypatch.setattr(loading, name, refuse)


@pytest.mark.parametrize("stage, overrides, path, rule", [case[1:] for case in BAD_OPTIONS],
                         ids=[case[0] for case in BAD_OPTIONS])
def test_bad_option_fails_at_parse_time(tmp_path, capsys, no_model_loading, stage, overrides, path, rule):
    missing_model = tmp_path / "no-such-model"  # never read: the option fails first
    files = _files(tmp_path)
    if stage == "ppo":
        cfg = ppo_config(tmp_path, missing_model, files["prompts"], **overrides)
    else:
        cfg = dpo_config(tmp_path, missing_model, files, **overrides)
    code = main(["fit", "--config", str(cfg)])
    err = capsys.readouterr().err
    assert code == 2, err[-3000:]
    assert "Traceback" not in err and "Union subtypes" not in err, err[-3000:]
    errors = [line for line in err.splitlines() if line.startswith("rlhf-lightning: error:")]
    assert len(errors) == 1, err[-3000:]
    assert f"error: {path}: must" in errors[0] and rule in errors[0], errors[0]
    assert "no-such-model" not in err
    assert not (tmp_path / "checkpoints").exists()


def test_table_is_large_enough():
    assert len(BAD_OPTIONS) >= 15 and len({case[0] for case in BAD_OPTIONS}) == len(BAD_OPTIONS)
