"""Online RL episodes/s and peak memory: rlhf-lightning ``PPOModule`` against TRL, in one run, as ratios.

    python tests/benchmarks/bench_online.py                     # grpo, rloo, ppo on the demo-shaped model
    python tests/benchmarks/bench_online.py --quick             # smoke run, ~3 minutes
    python tests/benchmarks/bench_online.py --setups ppo --models 30m --repeat 2 --json /tmp/online.json

Three pairs, each side in a fresh subprocess with 2 torch threads:

- ``grpo``: ours ``advantage: grpo`` (KL k3 in the loss) vs TRL 1.16 ``GRPOTrainer`` (``beta`` > 0);
- ``rloo``: ours ``advantage: rloo`` (KL k1 in the reward) vs TRL 1.16 ``RLOOTrainer``;
- ``ppo``: ours ``advantage: gae`` with a separate critic model and a reward-model plugin vs TRL 1.12's
  ``trl.experimental.ppo.PPOTrainer`` (removed from later TRL). TRL 1.12 is kept out of the project's
  environment: ``pip install --no-deps --target /tmp/trl112 trl==1.12.0`` (the script runs that command
  when the folder is missing); its worker runs with ``PYTHONPATH=/tmp/trl112`` first, so it shadows the
  installed TRL while sharing torch and transformers.

Same for both sides of a pair: the model folder (a random Llama saved with ``save_pretrained``, the demo
tokenizer and its chat template), the prompts (``configs/demo/data/ppo_prompts.jsonl``, rendered with the
chat template), prompts per step and samples per prompt, fixed-length completions (``max_new_tokens``
tokens, stop tokens suppressed: ours ``min_new_tokens``, TRL ``generation_kwargs`` / PPO's
``stop_token=None``), sampling at temperature 1 with no top-k/top-p, one PPO epoch in
``--minibatches`` minibatches (one optimizer step each), AdamW (fused, constant lr, no weight decay),
fp32, no dropout, no checkpoints, no gradient checkpointing. Rewards: GRPO/RLOO score with the same plain
Python function (:func:`rule_scores`, a reward plugin on our side, a reward function on TRL's); PPO scores
with one random ``LlamaForSequenceClassification`` folder that also initialises the critic on both sides.

episodes/s = completions generated and trained on in the measured rollouts / wall time from the end of
the last warm-up rollout to the end of the last one (generation, scoring, reference and value passes,
the optimizer steps and logging all count). Peak RSS is the worker's ``ru_maxrss``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from rlhf_lightning.rewards.base import RewardFunction  # noqa: E402  (light: no torch import)
from tests.benchmarks.meter import Meter, environment, fit_ours, worker_env  # noqa: E402

THREADS = 2
PROMPTS = REPO / "configs/demo/data/ppo_prompts.jsonl"
TOKENIZER = REPO / "configs/demo/tokenizer"
TRL112 = Path(os.environ.get("TRL112_DIR", "/tmp/trl112"))
TRL112_INSTALL = [sys.executable, "-m", "pip", "install", "--no-deps", "--target", str(TRL112), "trl==1.12.0"]
MODELS = {  # Llama shapes; vocab = the demo tokenizer's
    "demo": dict(hidden_size=256, num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=4,
                 intermediate_size=688),
    "30m": dict(hidden_size=512, num_hidden_layers=8, num_attention_heads=8, num_key_value_heads=8,
                intermediate_size=1376),
}
SETUPS = ("grpo", "rloo", "ppo")
KERNEL_OPTION = {"auto": "auto", "on": True, "off": False}  # --onednn -> model.ppo.onednn / generation.onednn
PEER = {"grpo": "TRL 1.16 GRPOTrainer", "rloo": "TRL 1.16 RLOOTrainer", "ppo": "TRL 1.12 PPOTrainer"}
KL = {"grpo": 0.04, "rloo": 0.05, "ppo": 0.05}  # TRL's defaults for RLOO and PPO; GRPO's (0) would skip the reference


# ----------------------------------------------------------------------------------------- the shared reward
def rule_scores(completions: list[str]) -> list[float]:
    """The rule reward of both sides: words in the completion, saturating at 16, in [0, 1]."""
    return [min(len(text.split()), 16) / 16 for text in completions]


class RuleReward(RewardFunction):
    """Our side of the rule reward: a reward plugin around :func:`rule_scores`."""

    def __call__(self, prompts, completions, **columns):
        return rule_scores(completions)


def trl_rule_reward(prompts, completions, **kwargs):
    """TRL's side of the rule reward (conversational completions are lists of messages)."""
    return rule_scores([c[-1]["content"] if isinstance(c, list) else c for c in completions])


def _prompt_rows(n: int | None = None, path: str | None = None) -> list[str]:
    lines = [line for line in Path(path or PROMPTS).read_text(encoding="utf-8").splitlines() if line.strip()]
    return [json.loads(line)["prompt"] for line in lines[:n]]


# ----------------------------------------------------------------------------------------- workers
def run_ours(a) -> None:
    work = Path(a.work)
    episodes = a.prompts_per_step * a.samples
    gen = {"max_new_tokens": a.max_new_tokens, "min_new_tokens": a.max_new_tokens, "do_sample": True,
           "temperature": 1.0, "top_k": 0, "top_p": 1.0, "num_return_sequences": a.samples}
    model = {
        "policy": {"name_or_path": a.model_dir, "dtype": "float32", "attn_implementation": "sdpa"},
        "ppo": {"epochs": 1, "num_minibatches": a.minibatches, "clip_eps": 0.2, "aggregation": "token_mean",
                "max_grad_norm": None if a.setup == "ppo" else 1.0},
        "generation": gen,
        "optimizer": {"class_path": "torch.optim.AdamW",
                      "init_args": {"lr": a.lr, "weight_decay": 0.0, "fused": True}},
        "log_samples_every_n_steps": 0,
    }
    if a.onednn != "default":  # else the stage's own defaults (what we ship)
        model["ppo"]["onednn"] = model["generation"]["onednn"] = KERNEL_OPTION[a.onednn]
    if a.setup == "grpo":
        model.update(rewards=[{"class_path": "tests.benchmarks.bench_online.RuleReward"}],
                     advantage={"class_path": "grpo", "init_args": {"scale_by_std": True}},
                     kl={"coef": KL["grpo"], "estimator": "k3", "apply_to": "loss"})
    elif a.setup == "rloo":
        model.update(rewards=[{"class_path": "tests.benchmarks.bench_online.RuleReward"}],
                     advantage={"class_path": "rloo"},
                     kl={"coef": KL["rloo"], "estimator": "k1", "apply_to": "reward"})
    else:
        model.update(rewards=[{"class_path": "classifier", "init_args": {
                         "model": a.rm_dir, "batch_size": episodes, "max_length": 512}}],
                     advantage={"class_path": "gae", "init_args": {"gamma": 1.0, "lam": 0.95, "whiten": True}},
                     critic={"model": {"name_or_path": a.rm_dir, "dtype": "float32", "attn_implementation": "sdpa"},
                             "coef": 0.1, "value_clip": 0.2},
                     kl={"coef": KL["ppo"], "estimator": "k1", "apply_to": "reward"})
    cfg = {
        "seed_everything": 0,
        "trainer": {
            "accelerator": "cpu", "devices": 1, "precision": "32-true",
            "max_steps": (a.warmup + a.steps) * a.minibatches,  # optimizer steps
            "default_root_dir": str(work), "enable_progress_bar": False, "enable_model_summary": False,
            "enable_checkpointing": False, "log_every_n_steps": 10, "num_sanity_val_steps": 0,
            "logger": {"class_path": "lightning.pytorch.loggers.CSVLogger", "init_args": {"save_dir": str(work)}},
            "callbacks": [{"class_path": "tests.benchmarks.meter.LightningStepMeter",
                           "init_args": {"out": a.out, "warmup": a.warmup, "units_per_step": episodes,
                                         "profile": a.profile, "pad_token_id": _pad_id(a.model_dir)}}],
        },
        "model": {"class_path": "rlhf_lightning.modules.ppo.PPOModule", "init_args": model},
        "data": {"class_path": "rlhf_lightning.datamodules.prompts.PromptDataModule", "init_args": {
            "train": a.data_file or str(PROMPTS), "max_prompt_length": 96, "batch_size": a.prompts_per_step}},
        "export": {"enabled": False},
    }
    fit_ours(work, cfg)
    from rlhf_lightning.rollout import onednn

    out = Path(a.out)  # what ppo.onednn / generation.onednn resolved to in this process, and the probe
    res = json.loads(out.read_text(encoding="utf-8"))
    from rlhf_lightning.modules.ppo.config import PPOLoopSpec

    res.update(onednn=a.onednn, onednn_used=onednn.resolve(KERNEL_OPTION.get(a.onednn, PPOLoopSpec().onednn)),
               onednn_probe=onednn.probe() if onednn.available() else None)
    out.write_text(json.dumps(res, indent=1), encoding="utf-8")


def _pad_id(model_dir: str) -> int:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(model_dir).pad_token_id


def _trl_common(a) -> dict:
    return dict(output_dir=str(Path(a.work) / "trl"), learning_rate=a.lr, lr_scheduler_type="constant",
                warmup_steps=0, weight_decay=0.0, optim="adamw_torch_fused", bf16=False, fp16=False,
                gradient_checkpointing=False, use_cpu=True, seed=0, logging_steps=10, report_to="none",
                save_strategy="no", disable_tqdm=True, dataloader_num_workers=0)


def run_trl_group(a) -> None:
    """TRL 1.16 GRPOTrainer / RLOOTrainer: one generation batch = prompts × samples, split in minibatches."""
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback

    episodes = a.prompts_per_step * a.samples
    per_step = episodes // a.minibatches  # completions per optimizer step
    meter = Meter(a.warmup * a.minibatches, a.out, a.profile)

    class StepCallback(TrainerCallback):
        def on_train_begin(self, args, state, control, model=None, **kw):
            meter.attach(model, _pad_id(a.model_dir))

        def on_step_end(self, args, state, control, **kw):
            meter.step_end(per_step)

    common = dict(_trl_common(a), max_steps=(a.warmup + a.steps) * a.minibatches,
                  per_device_train_batch_size=per_step, gradient_accumulation_steps=1,
                  steps_per_generation=a.minibatches, num_generations=a.samples, num_iterations=1,
                  max_completion_length=a.max_new_tokens, temperature=1.0, top_p=1.0, top_k=0,
                  generation_kwargs={"min_new_tokens": a.max_new_tokens}, beta=KL[a.setup], epsilon=0.2,
                  max_grad_norm=1.0, disable_dropout=True, log_completions=False, shuffle_dataset=True)
    if a.setup == "grpo":
        from trl import GRPOConfig as Config
        from trl import GRPOTrainer as Trainer

        config = Config(**common, loss_type="bnpo", scale_rewards="group")
    else:
        from trl import RLOOConfig as Config
        from trl import RLOOTrainer as Trainer

        config = Config(**common, normalize_advantages=False)
    tokenizer = AutoTokenizer.from_pretrained(a.model_dir)
    model = AutoModelForCausalLM.from_pretrained(a.model_dir, dtype=torch.float32, attn_implementation="sdpa")
    data = Dataset.from_list([{"prompt": [{"role": "user", "content": p}]} for p in _prompt_rows(path=a.data_file)])
    trainer = Trainer(model=model, reward_funcs=[trl_rule_reward], args=config, train_dataset=data,
                      processing_class=tokenizer, callbacks=[StepCallback()])
    trainer.train()
    meter.finish(dict(trl_file=__import__("trl").__file__))


def run_trl_ppo(a) -> None:
    """TRL 1.12 ``trl.experimental.ppo.PPOTrainer`` (run with PYTHONPATH=<TRL 1.12 folder> first)."""
    import torch
    import trl
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer, TrainerCallback
    from trl.experimental.ppo import PPOConfig, PPOTrainer

    if not trl.__version__.startswith("1.12"):
        raise SystemExit(f"the PPO peer needs TRL 1.12 first on PYTHONPATH, got trl {trl.__version__} "
                         f"from {trl.__file__}")
    batch = a.prompts_per_step * a.samples
    meter = Meter(a.warmup, a.out, a.profile)

    class StepCallback(TrainerCallback):
        def on_train_begin(self, args, state, control, model=None, **kw):
            meter.attach(policy, tokenizer.pad_token_id)  # the trainer's model wraps policy and value model

        def on_step_end(self, args, state, control, **kw):  # once per rollout in this trainer
            meter.step_end(batch)

    tokenizer = AutoTokenizer.from_pretrained(a.model_dir, padding_side="left")
    prompts = [p for p in _prompt_rows(path=a.data_file) for _ in range(a.samples)]
    ids = [tokenizer.apply_chat_template([{"role": "user", "content": p}], add_generation_prompt=True,
                                         tokenize=True, return_dict=True)["input_ids"] for p in prompts]
    data = Dataset.from_dict({"input_ids": ids})

    def load(cls, path, **kw):
        return cls.from_pretrained(path, dtype=torch.float32, attn_implementation="sdpa", **kw)

    policy, ref = load(AutoModelForCausalLM, a.model_dir), load(AutoModelForCausalLM, a.model_dir)
    value = load(AutoModelForSequenceClassification, a.rm_dir, num_labels=1)
    reward = load(AutoModelForSequenceClassification, a.rm_dir, num_labels=1)
    config = PPOConfig(**_trl_common(a), per_device_train_batch_size=batch, gradient_accumulation_steps=1,
                       num_mini_batches=a.minibatches, num_ppo_epochs=1, total_episodes=(a.warmup + a.steps) * batch,
                       local_rollout_forward_batch_size=batch, response_length=a.max_new_tokens, stop_token=None,
                       temperature=1.0, kl_coef=KL["ppo"], kl_estimator="k1", cliprange=0.2, vf_coef=0.1,
                       cliprange_value=0.2, gamma=1.0, lam=0.95, whiten_rewards=False, missing_eos_penalty=None,
                       num_sample_generations=0)
    trainer = PPOTrainer(args=config, processing_class=tokenizer, model=policy, ref_model=ref, reward_model=reward,
                         value_model=value, train_dataset=data, callbacks=[StepCallback()])
    trainer.train()
    meter.finish(dict(trl_file=trl.__file__))


def worker(a) -> None:
    import torch

    torch.set_num_threads(THREADS)
    if a.worker == "ours":
        run_ours(a)
    elif a.setup == "ppo":
        run_trl_ppo(a)
    else:
        run_trl_group(a)


# ----------------------------------------------------------------------------------------- preparation
def prepare_models(work: Path, name: str) -> tuple[Path, Path, int]:
    """Random policy (causal LM) and reward/value (1-label classifier) folders; returns them and the params."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM, LlamaForSequenceClassification

    tok = AutoTokenizer.from_pretrained(TOKENIZER)
    config = dict(vocab_size=len(tok), max_position_embeddings=512, tie_word_embeddings=False,
                  pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                  **MODELS[name])
    out = []
    for kind, cls, extra in (("policy", LlamaForCausalLM, {}), ("rm", LlamaForSequenceClassification,
                                                                 {"num_labels": 1})):
        torch.manual_seed(0)
        model = cls(LlamaConfig(**config, **extra))
        folder = work / f"{name}-{kind}"
        model.save_pretrained(folder)
        tok.save_pretrained(folder)
        out.append(folder)
        if kind == "policy":
            params = sum(p.numel() for p in model.parameters())
    return out[0], out[1], params


def ensure_trl112() -> bool:
    if (TRL112 / "trl/experimental/ppo/ppo_trainer.py").is_file():
        return True
    print("installing TRL 1.12 for the PPO peer:", " ".join(TRL112_INSTALL), flush=True)
    proc = subprocess.run(TRL112_INSTALL, capture_output=True, text=True)
    if proc.returncode:
        print(f"could not install TRL 1.12 (exit {proc.returncode}); run by hand:\n  {' '.join(TRL112_INSTALL)}\n"
              f"{proc.stderr[-2000:]}")
    return (TRL112 / "trl/experimental/ppo/ppo_trainer.py").is_file()


# ----------------------------------------------------------------------------------------- driver
def _run_one(a, work: Path, setup: str, fw: str, r: int, model_name: str, policy: Path, rm: Path) -> dict | None:
    tag = f"{model_name}-{setup}-{fw}-{r}"
    out, run_dir = work / f"{tag}.json", work / tag
    run_dir.mkdir()
    samples = 1 if setup == "ppo" else a.samples
    prompts = a.prompts_per_step * a.samples if setup == "ppo" else a.prompts_per_step
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", fw, "--setup", setup, "--work", str(run_dir),
           "--out", str(out), "--model-dir", str(policy), "--rm-dir", str(rm), "--steps", str(a.steps),
           "--warmup", str(a.warmup), "--prompts-per-step", str(prompts), "--samples", str(samples),
           "--max-new-tokens", str(a.max_new_tokens), "--minibatches", str(a.minibatches), "--lr", str(a.lr),
           "--onednn", a.onednn]
    if a.profile:
        Path(a.profile).mkdir(parents=True, exist_ok=True)
        cmd += ["--profile", str(Path(a.profile).resolve() / f"{tag}.txt")]
    env = worker_env(THREADS, REPO, str(TRL112) if (fw == "trl" and setup == "ppo") else None)
    load, started = os.getloadavg()[0], time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    (run_dir / "worker.log").write_text(proc.stdout + proc.stderr, encoding="utf-8")  # kept with --keep
    if proc.returncode or not out.is_file():
        print(f"{tag}: FAILED (exit {proc.returncode})\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}")
        return None
    res = json.loads(out.read_text())
    res.update(model=model_name, setup=setup, framework=fw, repeat=r, wall_s=time.perf_counter() - started,
               prompts_per_step=prompts, samples_per_prompt=samples, loadavg_1min_before=load,
               loadavg_1min_after=os.getloadavg()[0])
    print(f"{tag}: {res['units_per_sec']:.2f} episodes/s ({res['units_per_cpu_sec']:.2f}/CPU-s), "
          f"{res['units']:.0f} episodes in {res['seconds']:.1f}s, peak {res['peak_rss_mb']:.0f} MB, "
          f"load {load:.1f}->{res['loadavg_1min_after']:.1f}, run {res['wall_s']:.0f}s", flush=True)
    return res


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--setups", default=",".join(SETUPS), help="comma list of grpo, rloo, ppo")
    p.add_argument("--models", default="demo", help=f"comma list of {', '.join(MODELS)}")
    p.add_argument("--frameworks", default="ours,trl")
    p.add_argument("--steps", type=int, default=10, help="measured rollouts (after --warmup)")
    p.add_argument("--warmup", type=int, default=2, help="rollouts before the measured window")
    p.add_argument("--prompts-per-step", type=int, default=8,
                   help="prompts per rollout (ppo: prompts-per-step x samples prompts, 1 sample each)")
    p.add_argument("--samples", type=int, default=4, help="samples per prompt (grpo, rloo)")
    p.add_argument("--max-new-tokens", type=int, default=32, help="completion length (forced: no early stop)")
    p.add_argument("--minibatches", type=int, default=2, help="minibatches (optimizer steps) per rollout")
    p.add_argument("--lr", type=float, default=1e-5)
    p.add_argument("--onednn", choices=["default", "auto", "on", "off"], default="default",
                   help="ours: model.ppo.onednn and model.generation.onednn (default: leave the stage's defaults)")
    p.add_argument("--repeat", type=int, default=1, help="runs per side (alternating); the fastest is reported")
    p.add_argument("--profile", metavar="DIR", help="also write a torch.profiler table per run (slows the runs)")
    p.add_argument("--quick", action="store_true", help="smoke run: 3 measured rollouts after 1, 16 new tokens")
    p.add_argument("--json", help="write all results here")
    p.add_argument("--keep", action="store_true", help="keep the work folder")
    for flag in ("--worker", "--setup", "--work", "--out", "--model-dir", "--rm-dir", "--data-file"):
        p.add_argument(flag, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.worker:
        worker(a)
        return 0
    if a.quick:
        a.steps, a.warmup, a.max_new_tokens = 3, 1, 16
    setups = a.setups.split(",")
    frameworks = a.frameworks.split(",")
    if "ppo" in setups and "trl" in frameworks and not ensure_trl112():
        print("skipping the TRL side of ppo")

    env = environment(THREADS)
    print("environment:", json.dumps(env))
    work = Path(tempfile.mkdtemp(prefix="bench_online_"))
    results, expected = [], 0
    for model_name in a.models.split(","):
        policy, rm, n_params = prepare_models(work, model_name)
        for setup in setups:
            runs: dict[str, list] = {fw: [] for fw in frameworks}
            expected += len(runs)
            for r in range(a.repeat):
                for fw in runs:
                    res = _run_one(a, work, setup, fw, r, model_name, policy, rm)
                    if res:
                        res.update(params=n_params)
                        runs[fw].append(res)
            for rs in runs.values():
                if rs:  # the fastest run: other processes on the cores only ever slow a run down
                    best = max(rs, key=lambda x: x["units_per_sec"])
                    results.append(dict(best, all_episodes_per_sec=[x["units_per_sec"] for x in rs]))

    table = [("setup", "params", "episodes/s", "ep/rollout", "rollout s", "ep/CPU-s", "peak RSS MB",
              "ours/TRL ep/s", "ours/TRL RSS")]
    by = {(r["model"], r["setup"], r["framework"]): r for r in results}
    for r in results:
        peer = by.get((r["model"], r["setup"], "trl"))
        ratio = rss = None
        if r["framework"] == "ours" and peer:
            ratio, rss = r["units_per_sec"] / peer["units_per_sec"], r["peak_rss_mb"] / peer["peak_rss_mb"]
            r["ratio_vs_trl"], r["rss_ratio_vs_trl"] = ratio, rss
        side = "ours" if r["framework"] == "ours" else PEER[r["setup"]]
        per_rollout = r["prompts_per_step"] * r["samples_per_prompt"]
        table.append((f"{r['model']} {r['setup']} {side}", f"{r['params'] / 1e6:.1f}M", f"{r['units_per_sec']:.2f}",
                      f"{per_rollout}", f"{per_rollout / r['units_per_sec']:.2f}",
                      f"{r['units_per_cpu_sec']:.2f}" if r["units_per_cpu_sec"] else "-", f"{r['peak_rss_mb']:.0f}",
                      f"{ratio:.2f}" if ratio else "", f"{rss:.2f}" if rss else ""))
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    print(f"\nOnline RL, {a.prompts_per_step} prompts x {a.samples} samples per rollout (ppo: "
          f"{a.prompts_per_step * a.samples} prompts x 1), {a.max_new_tokens} new tokens (forced), 1 epoch x "
          f"{a.minibatches} minibatches, fp32, fused AdamW lr {a.lr}, {a.steps} measured rollouts after {a.warmup} "
          f"warm-up, {THREADS} torch threads")
    for i, row in enumerate(table):
        print(" | ".join(c.ljust(w) if j == 0 else c.rjust(w) for j, (c, w) in enumerate(zip(row, widths, strict=False))))
        if i == 0:
            print("-+-".join("-" * w for w in widths))
    if a.json:
        Path(a.json).write_text(json.dumps(dict(environment=env, settings={k: v for k, v in vars(a).items()
                                                if v is not None}, results=results), indent=1))
        print(f"results written to {a.json}")
    if a.keep:
        print(f"work folder kept: {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    return 0 if len(results) == expected else 1


if __name__ == "__main__":
    sys.exit(main())
