"""``configs/examples``: runs for real hardware, checked without the hardware or the hub.

Each example is parsed by the real CLI parser (:func:`rlhf_lightning.cli.build_cli_class`), with its model
and data options pointed at local stand-ins by command-line overrides: the hub model becomes
``init_config`` = a ``config.json`` with the real model's dimensions (so the architecture is the real
one), the tokenizer a tiny local one, the data file a few rows in the public dataset's own shape. Then

* the stage's ``configure_model`` builds every model on the meta device, and the parameter count
  matches the name (0.5B, 1.5B, 8B) and the published count;
* the data module reads the stand-in rows in the declared format and yields a batch;
* the header's "Peak memory per GPU ... ~N GiB" agrees within 10% with the same parameters x bytes
  arithmetic computed here from the config and the meta model (tests/configs/memory_estimate.py).

What needs a GPU (bf16 on CUDA, bitsandbytes 4-bit, DeepSpeed, NCCL) is parsed and validated here; the
Trainer with those strategies and plugins is built by the ``gpu``-marked test only where CUDA is present.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
import yaml

from rlhf_lightning.cli import build_cli_class
from rlhf_lightning.registry import prepare_for_parsing
from tests.configs import memory_estimate as mem
from tests.datamodules.test_public_formats import H4_ULTRAFEEDBACK, write_jsonl

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "configs" / "examples"
BASE = ROOT / "configs" / "demo" / "sft.yaml"
HARDWARE_EXAMPLES = sorted(p for p in EXAMPLES.glob("*.yaml") if "gpu-only" in p.read_text()[:400].lower())

# The hub models' config.json fields that fix the parameter count (from their model cards' configs),
# their nominal size and their published parameter count.
ARCHITECTURES = {
    "Qwen/Qwen2.5-0.5B-Instruct": ({
        "model_type": "qwen2", "vocab_size": 151936, "hidden_size": 896, "intermediate_size": 4864,
        "num_hidden_layers": 24, "num_attention_heads": 14, "num_key_value_heads": 2,
        "max_position_embeddings": 32768, "tie_word_embeddings": True, "rope_theta": 1000000.0,
        "rms_norm_eps": 1e-6}, 0.5e9, 494_032_768),
    "Qwen/Qwen2.5-1.5B-Instruct": ({
        "model_type": "qwen2", "vocab_size": 151936, "hidden_size": 1536, "intermediate_size": 8960,
        "num_hidden_layers": 28, "num_attention_heads": 12, "num_key_value_heads": 2,
        "max_position_embeddings": 32768, "tie_word_embeddings": True, "rope_theta": 1000000.0,
        "rms_norm_eps": 1e-6}, 1.5e9, 1_543_714_304),
    "meta-llama/Llama-3.1-8B-Instruct": ({
        "model_type": "llama", "vocab_size": 128256, "hidden_size": 4096, "intermediate_size": 14336,
        "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 8,
        "max_position_embeddings": 131072, "tie_word_embeddings": False, "rope_theta": 500000.0,
        "rms_norm_eps": 1e-5, "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                               "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}},
        8e9, 8_030_261_248),
}
# Reward models named by the examples' `classifier` rewards: DeBERTa-v3-large with a scalar head (435M).
REWARD_MODELS = {
    "OpenAssistant/reward-model-deberta-v3-large-v2": ({
        "model_type": "deberta-v2", "vocab_size": 128100, "hidden_size": 1024, "intermediate_size": 4096,
        "num_hidden_layers": 24, "num_attention_heads": 16, "max_position_embeddings": 512,
        "relative_attention": True, "position_buckets": 256, "norm_rel_ebd": "layer_norm", "share_att_key": True,
        "pos_att_type": ["p2c", "c2p"], "position_biased_input": False, "type_vocab_size": 0,
        "max_relative_positions": -1, "pooler_hidden_size": 1024, "num_labels": 1}, 435e6),
}


# ----------------------------------------------------------------------------- stand-in rows, by data file


def _chat(*turns):
    return [{"role": role, "content": text} for role, text in zip(("user", "assistant") * 2, turns, strict=False)]


def _rows(name: str, n: int = 64) -> list[dict]:
    """``n`` rows in the shape of the public dataset the example's file name says."""
    if name.startswith("dolly"):  # databricks/databricks-dolly-15k
        return [{"instruction": f"Explain gravity {i}.", "context": "Gravity pulls." if i % 2 else "",
                 "response": "Gravity pulls objects toward each other.", "category": "open_qa"} for i in range(n)]
    if name.startswith("ultrachat"):  # HuggingFaceH4/ultrachat_200k
        return [{"prompt": f"Explain gravity {i}.", "prompt_id": f"{i:064x}",
                 "messages": _chat(f"Explain gravity {i}.", "It pulls.", "And the moon?", "The earth pulls it.")}
                for i in range(n)]
    if name.startswith("openhermes"):  # teknium/OpenHermes-2.5 (ShareGPT turns carry a `weight` key)
        blank = dict.fromkeys(("custom_instruction", "topic", "model_name", "model", "skip_prompt_formatting",
                               "category", "views", "language", "id", "title", "idx", "hash", "avatarUrl",
                               "system_prompt"))
        return [{**blank, "source": "airoboros2.2", "conversations": [
            {"from": "system", "value": "You are helpful.", "weight": None},
            {"from": "human", "value": f"Explain gravity {i}.", "weight": None},
            {"from": "gpt", "value": "Gravity pulls objects toward each other.", "weight": None}]} for i in range(n)]
    if name.startswith("ultrafeedback_binarized"):  # HuggingFaceH4/ultrafeedback_binarized
        return [{**H4_ULTRAFEEDBACK, "prompt_id": f"{i:064x}"} for i in range(n)]
    if name.startswith("tldr"):  # trl-lib/tldr
        return [{"prompt": f"SUBREDDIT: r/physics\n\nTITLE: gravity {i}\n\nPOST: Why do things fall?\n\nTL;DR:",
                 "completion": " things fall because gravity pulls them"} for i in range(n)]
    raise AssertionError(f"no stand-in rows for data file {name!r}: add its public shape here")


def _data_overrides(data_args: dict, tmp_path: Path) -> list[str]:
    """``--data.init_args.<split>=...`` pointing each source at a stand-in file of the same shape."""
    out = []
    for split in ("train", "val", "predict"):
        value = data_args.get(split)
        if value is None:
            continue
        source = value if isinstance(value, dict) else {"path": value}
        stand_in = write_jsonl(tmp_path / f"{split}_{Path(source['path']).name}", _rows(Path(source["path"]).name))
        out.append(f"--data.init_args.{split}={json.dumps({**source, 'path': str(stand_in)})}")
    return out


def _model_overrides(model_args: dict, tmp_path: Path, tokenizer: Path) -> list[str]:
    """The hub policy/reference become ``init_config`` folders with the real dimensions; 4-bit loading,
    which needs CUDA and real weights, is switched off (its options are checked separately)."""
    out = []
    for key in ("policy", "reference"):
        spec = model_args.get(key)
        if not spec:
            continue
        fields, _, _ = ARCHITECTURES[spec["name_or_path"]]
        folder = tmp_path / f"{key}_config"
        folder.mkdir()
        (folder / "config.json").write_text(json.dumps(fields))
        out += [f"--model.init_args.{key}.name_or_path=null", f"--model.init_args.{key}.init_config={folder}",
                f"--model.init_args.{key}.tokenizer={tokenizer}"]
        if spec.get("quantization"):
            out.append(f"--model.init_args.{key}.quantization.load_in_4bit=false")
    return out


def _header_gib(text: str) -> float:
    """The ``~N GiB`` that follows "Peak memory per GPU (estimate, not measured" in the header."""
    start = text.find("# Peak memory per GPU (estimate, not measured")
    match = re.compile(r"~([\d.]+) GiB").search(text, start) if start >= 0 else None
    assert match, "the header gives 'Peak memory per GPU (estimate, not measured ...): ~N GiB'"
    return float(match.group(1))


def _cli_without_trainer(args: list[str]):
    """The real CLI class on ``args``, run=False, with everything but the Trainer built: the examples'
    GPU accelerators cannot be built on a CPU machine (the ``gpu`` test builds them)."""
    prepare_for_parsing()

    class ExampleCLI(build_cli_class()):
        def instantiate_trainer(self, **kwargs):
            return None

    return ExampleCLI(args=args, run=False)


def _meta_count(fields: dict, auto: str = "AutoModelForCausalLM") -> int:
    import transformers

    config = transformers.AutoConfig.for_model(**fields)
    with torch.device("meta"):
        model = getattr(transformers, auto).from_config(config)
    return sum(p.numel() for p in model.parameters())


# ----------------------------------------------------------------------------- tests


def test_there_are_examples_for_each_hardware_kind():
    names = [p.name for p in HARDWARE_EXAMPLES]
    texts = {p.name: p.read_text() for p in HARDWARE_EXAMPLES}
    assert any("qlora" in n for n in names) and any("fsdp" in n for n in names)
    assert any("zero3" in n for n in names) and any("grpo" in n for n in names)
    assert any("0.5b_sft" in n for n in names) and any("0.5b_dpo" in n for n in names)
    for name, text in texts.items():
        assert text.splitlines()[0] == f"# rlhf-lightning fit --config configs/examples/{name}", name
        assert "Data (once" in text and "from datasets import load_dataset" in text, f"{name}: says how to download its data"


@pytest.mark.parametrize("fields,nominal,published", list(ARCHITECTURES.values()), ids=list(ARCHITECTURES))
def test_architecture_has_the_size_in_its_name(fields, nominal, published):
    count = _meta_count(fields)
    assert count == published
    assert abs(count - nominal) / nominal < 0.05


def test_reward_model_architecture_has_its_published_size():
    fields, published = REWARD_MODELS["OpenAssistant/reward-model-deberta-v3-large-v2"]
    assert abs(_meta_count(fields, "AutoModelForSequenceClassification") - published) / published < 0.03


@pytest.mark.parametrize("path", HARDWARE_EXAMPLES, ids=lambda p: p.name)
def test_example_builds_on_meta_and_its_memory_header_holds(path, tmp_path, tiny_tokenizer_dir, monkeypatch):
    monkeypatch.chdir(ROOT)
    text = path.read_text()
    raw = yaml.safe_load(text)
    model_args, data_args = raw["model"]["init_args"], raw["data"]["init_args"]
    args = ["--config", str(path), *_model_overrides(model_args, tmp_path, tiny_tokenizer_dir),
            *_data_overrides(data_args, tmp_path)]
    deepspeed = "DeepSpeedStrategy" in str(raw["trainer"].get("strategy", {}).get("class_path", ""))
    # Lightning's DeepSpeedStrategy refuses to be built without the deepspeed package: parsed, then replaced
    cli = _cli_without_trainer(args + (["--trainer.strategy=auto"] if deepspeed else []))
    assert cli.parser.parse_args(args).trainer.strategy is not None  # the example's own strategy block validates
    module, datamodule = cli.model, cli.datamodule

    with torch.device("meta"):
        module.configure_model()
    policy = module.model
    assert next(policy.parameters()).device.type == "meta"
    fields, nominal, published = ARCHITECTURES[model_args["policy"]["name_or_path"]]
    base = sum(p.numel() for n, p in policy.named_parameters() if "lora_" not in n)
    assert base == published and abs(base - nominal) / nominal < 0.05

    arch = mem.architecture(policy)
    run = _run_of(raw, arch, module)
    if model_args["policy"].get("quantization"):
        _check_quantization(model_args["policy"], policy, arch)

    datamodule.setup("fit")
    batch = next(iter(datamodule.train_dataloader()))
    pairs = raw["model"]["class_path"].endswith("DPOModule")  # chosen and rejected rows of each pair
    assert batch["input_ids"].shape[0] == data_args["batch_size"] * (2 if pairs else 1), path.name
    if "labels" in batch:  # the dataset's answer turns are trained on
        assert (batch["labels"] != -100).any(), f"{path.name}: no trained token in the stand-in rows"
    for reward in model_args.get("rewards", []):  # reference columns reach the reward plugins
        column = reward.get("init_args", {}).get("column")
        assert column is None or column in batch, f"{path.name}: column {column!r} missing from the prompt batch"

    computed = mem.estimate(run)
    header = _header_gib(text)
    assert abs(header - computed["total"]) / computed["total"] < 0.10, (
        f"{path.name}: header says ~{header} GiB, parameters x bytes give {computed['total']:.2f} GiB: "
        + ", ".join(f"{k} {v:.2f}" for k, v in computed.items()))


def _run_of(raw: dict, arch: mem.Architecture, module) -> mem.Run:
    """The estimate's inputs, read from the YAML as written and the meta model."""
    trainer, model_args, data = raw["trainer"], raw["model"]["init_args"], raw["data"]["init_args"]
    policy = model_args["policy"]
    strategy = trainer.get("strategy") or {}
    kind = str(strategy.get("class_path", "")) if isinstance(strategy, dict) else ""
    stage3 = "DeepSpeed" in kind and strategy.get("init_args", {}).get("stage") == 3
    sharding = "fsdp" if "FSDP" in kind else "zero3" if stage3 else "none"
    shards = int(trainer["devices"]) * int(trainer.get("num_nodes", 1)) if sharding != "none" else 1
    assert trainer["precision"] == "bf16-mixed" and "AdamW" in model_args["optimizer"]["class_path"]
    run = mem.Run(arch=arch, shards=shards, sharding=sharding, weight_dtype=policy.get("dtype", "float32"),
                  quantized=bool(policy.get("quantization")), checkpointing=bool(policy.get("gradient_checkpointing")))
    stage = raw["model"]["class_path"].rsplit(".", 1)[-1]
    if stage == "SFTModule":
        run.act_tokens = run.logit_rows = data["batch_size"] * data["max_length"]
    elif stage == "DPOModule":  # chosen and rejected in one forward; logits bounded by every position
        assert model_args.get("precompute_reference") or policy.get("lora"), "no reference copy in the estimate"
        run.act_tokens = run.logit_rows = 2 * data["batch_size"] * data["max_length"]
    elif stage == "PPOModule":
        gen, ppo = model_args["generation"], model_args.get("ppo", {})
        rollouts = data["batch_size"] * gen.get("num_return_sequences", 1)
        length = data["max_prompt_length"] + gen["max_new_tokens"]
        minibatch = rollouts // ppo.get("num_minibatches", 1)
        run.kv_tokens = rollouts * length
        run.act_tokens = minibatch * length
        run.logit_rows = minibatch * gen["max_new_tokens"]  # logits only for completion positions
        if module.ref_model is not None:
            ref = model_args["reference"]
            run.frozen_bytes["reference"] = sum(p.numel() for p in module.ref_model.parameters()) \
                * mem.DTYPE_BYTES[ref.get("dtype", "float32")]
        for reward in model_args["rewards"]:
            if reward["class_path"] == "classifier":
                fields, _ = REWARD_MODELS[reward["init_args"]["model"]]
                dtype = reward["init_args"].get("dtype") or "float32"
                run.frozen_bytes["reward model"] = _meta_count(fields, "AutoModelForSequenceClassification") \
                    * mem.DTYPE_BYTES[dtype]
    else:
        raise AssertionError(f"no memory arithmetic for stage {stage}")
    return run


def _check_quantization(policy: dict, model, arch: mem.Architecture) -> None:
    """The QLoRA options as transformers' BitsAndBytesConfig takes them, and the adapter's size."""
    from rlhf_lightning.models.quantization import bnb_config
    from rlhf_lightning.models.spec import QuantizationSpec

    config = bnb_config(QuantizationSpec(**policy["quantization"]))
    assert config.load_in_4bit and config.bnb_4bit_quant_type == "nf4" and config.bnb_4bit_use_double_quant
    assert config.bnb_4bit_compute_dtype == torch.bfloat16
    # LoRA on every linear layer of the blocks (not the LM head): r x (in + out) parameters per layer
    base = model.get_base_model()
    blocks = mem._blocks(base)
    linears = [m for b in blocks for n, m in b.named_modules() if n.endswith("base_layer")]
    assert len(linears) == 7 * len(blocks)  # q, k, v, o, gate, up, down
    r = policy["lora"]["r"]
    assert arch.trainable == sum(r * (m.in_features + m.out_features) for m in linears)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("path", HARDWARE_EXAMPLES, ids=lambda p: p.name)
def test_example_builds_its_trainer_on_gpu(path, tmp_path, tiny_tokenizer_dir, monkeypatch):
    """On a CUDA machine: the whole CLI (Trainer with bf16-mixed on CUDA, FSDP2 / DeepSpeed strategy) is built
    from the example, with the GPU count capped at what the machine has."""
    monkeypatch.chdir(ROOT)
    raw = yaml.safe_load(path.read_text())
    if "DeepSpeed" in str(raw["trainer"].get("strategy", "")):
        pytest.importorskip("deepspeed")
    args = ["--config", str(path), *_model_overrides(raw["model"]["init_args"], tmp_path, tiny_tokenizer_dir),
            *_data_overrides(raw["data"]["init_args"], tmp_path),
            f"--trainer.devices={min(int(raw['trainer']['devices']), torch.cuda.device_count())}"]
    prepare_for_parsing()
    cli = build_cli_class()(args=args, run=False)
    assert cli.trainer.precision == "bf16-mixed" and cli.trainer.accelerator.__class__.__name__ == "CUDAAccelerator"


@pytest.mark.slow
@pytest.mark.parametrize("path", [p for p in HARDWARE_EXAMPLES if "zero3" not in p.name], ids=lambda p: p.name)
def test_example_trains_two_steps_on_cpu(path, tmp_path, tiny_tokenizer_dir):
    """Each example as written (its stage, loss, LoRA/4-bit options, strategy block, accumulation, clipping,
    checkpointing, data format) makes two optimizer steps through the ``rlhf-lightning`` command on CPU,
    with a tiny pretrained Llama folder in place of the hub model and float32 in place of CUDA bf16; the
    FSDP2 example on two gloo processes. bitsandbytes 4-bit runs on CPU; DeepSpeed needs CUDA (not run)."""
    import os
    import subprocess
    import sys

    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from tests import tiny

    raw = yaml.safe_load(path.read_text())
    model_args = raw["model"]["init_args"]
    vocab = len(AutoTokenizer.from_pretrained(tiny_tokenizer_dir))
    llama = tiny.build_llama(tmp_path / "llama", vocab_size=vocab, hidden_size=64, tokenizer_dir=tiny_tokenizer_dir)
    config = json.loads((llama / "config.json").read_text())  # room for the examples' prompt + answer lengths
    (llama / "config.json").write_text(json.dumps({**config, "max_position_embeddings": 4096}))
    fsdp = "FSDP" in str(raw["trainer"].get("strategy", ""))
    args = [str(Path(sys.executable).parent / "rlhf-lightning"), "fit", "--config", str(path),
            "--trainer.accelerator=cpu", f"--trainer.devices={2 if fsdp else 1}", "--trainer.precision=32-true",
            "--trainer.max_steps=2", "--trainer.limit_val_batches=0", "--trainer.enable_progress_bar=false",
            f"--trainer.default_root_dir={tmp_path / 'run'}", *_data_overrides(raw["data"]["init_args"], tmp_path),
            "--data.init_args.num_workers=0"]
    for key in ("policy", "reference"):
        if model_args.get(key):
            args.append(f"--model.init_args.{key}.name_or_path={llama}")
    if model_args.get("rewards"):  # the public reward model becomes a tiny classifier folder
        classifier = tmp_path / "classifier"
        AutoModelForSequenceClassification.from_pretrained(llama, num_labels=1).save_pretrained(classifier)
        AutoTokenizer.from_pretrained(tiny_tokenizer_dir).save_pretrained(classifier)
        rewards = [{**r, "init_args": {**r["init_args"], "model": str(classifier)}} if r["class_path"] == "classifier"
                   else r for r in model_args["rewards"]]
        args.append(f"--model.init_args.rewards={json.dumps(rewards)}")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    res = subprocess.run(args, capture_output=True, text=True, timeout=600, env=env, cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    assert (tmp_path / "run" / "export").is_dir()
