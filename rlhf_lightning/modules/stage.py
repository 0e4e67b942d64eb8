"""What every stage module shares, as functions (no base-class hierarchy)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Optional

import torch

from rlhf_lightning.models.spec import LoraSpec, ModelSpec, QuantizationSpec
from rlhf_lightning.optim.schedules import WarmupCosineLR
from rlhf_lightning.rollout.generation import GenerationSpec, generate

# Stage hyperparameters hold these option dataclasses and are saved in every checkpoint; Lightning
# resumes (--ckpt_path) with torch.load(weights_only=True), which refuses classes not allowed here.
torch.serialization.add_safe_globals([ModelSpec, LoraSpec, QuantizationSpec, GenerationSpec])


def configure_stage_optimizers(module, optimizer_fn: Callable, scheduler_fn: Optional[Callable], *,
                               params: Any = None, steps_per_batch: int = 1):
    """Build the injected optimizer over trainable parameters and, if given, a per-step scheduler.

    Frozen parameters (a LoRA base, a reference model) are left out so the optimizer holds no state
    for them; ``params`` (e.g. parameter groups) replaces that default. A :class:`WarmupCosineLR`
    without ``total_steps`` gets the trainer's estimate × ``steps_per_batch`` (optimizer steps per
    training batch: PPO's epochs × minibatches). What torch refuses (a negative learning rate) is a
    user error naming ``model.init_args.optimizer`` / ``model.init_args.scheduler``.
    """
    from rlhf_lightning.errors import option_errors

    if params is None:
        params = [p for p in module.parameters() if p.requires_grad]
    with option_errors("model.init_args.optimizer"):
        optimizer = optimizer_fn(params)
    if scheduler_fn is None:
        return optimizer
    with option_errors("model.init_args.scheduler"):
        scheduler = scheduler_fn(optimizer)
    if isinstance(scheduler, WarmupCosineLR) and scheduler.total_steps is None:
        scheduler.total_steps = int(module.trainer.estimated_stepping_batches) * steps_per_batch
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


def load_policy(spec: ModelSpec) -> tuple[Any, Any]:
    """``(tokenizer, causal LM)`` of a stage's ``policy`` option; what transformers/peft refuse is the
    user's option ``model.init_args.policy``. Call it in ``configure_model`` so strategies can shard."""
    from rlhf_lightning.errors import option_errors
    from rlhf_lightning.models.loading import load_causal_lm, load_tokenizer

    with option_errors("model.init_args.policy"):
        tokenizer = load_tokenizer(spec)
        return tokenizer, load_causal_lm(spec, tokenizer=tokenizer)


def check_generation_budget(stage: Any) -> None:
    """ConfigError when the data's prompt budget plus ``stage.generation.max_new_tokens`` exceeds the
    policy's context (online stages generate from every prompt: the overflow would fail mid-run)."""
    from rlhf_lightning.errors import ConfigError

    data = getattr(stage.trainer, "datamodule", None)
    budget = getattr(getattr(data, "hparams", None), "max_prompt_length", None)
    context = getattr(stage.model.config, "max_position_embeddings", None)
    if budget and context and budget + stage.generation.max_new_tokens > context:
        raise ConfigError(f"data.max_prompt_length ({budget}) + generation.max_new_tokens "
                          f"({stage.generation.max_new_tokens}) exceeds the policy's context ({context} tokens)")


def predict_rows(batch: dict[str, Any]) -> list[dict[str, Any]]:
    """The rows of a ``predict`` batch as the data module read them: every column except the rendered
    prompt ``text`` and the tensors (see :mod:`rlhf_lightning.datamodules.predict`)."""
    columns = {k: v for k, v in batch.items() if isinstance(v, list) and k != "text"}
    return [{k: v[i] for k, v in columns.items()} for i in range(batch["input_ids"].shape[0])]


def generate_predictions(model, tokenizer, batch: dict[str, Any], spec: GenerationSpec) -> list[dict[str, Any]]:
    """Answer a ``predict`` batch: one row per generated sample (``spec.num_return_sequences`` per
    prompt, in order), the prompt row's columns plus ``completion``, for the JSONL prediction writer."""
    _, texts = generate(model, tokenizer, batch["input_ids"], batch["attention_mask"], spec)
    rows, n = predict_rows(batch), spec.num_return_sequences
    return [{**rows[i // n], "completion": text} for i, text in enumerate(texts)]


def _merge_advice(module, dirpath: str | Path) -> str:
    """Why a sharded model's LoRA is not merged at the end of ``fit``, and the command that merges it
    from the run's checkpoint (no collectives: may run on one rank only)."""
    import os
    import shlex

    trainer = getattr(module, "_trainer", None)
    config, ckpt = "<the run's config.yaml>", "<the run's last checkpoint>"
    if trainer is not None:
        logger = trainer.loggers[0] if trainer.loggers else None
        log_dir = getattr(logger, "log_dir", None) or trainer.default_root_dir
        if os.path.isfile(os.path.join(log_dir, "config.yaml")):
            config = shlex.quote(os.path.join(log_dir, "config.yaml"))
        callback = trainer.checkpoint_callback
        found = getattr(callback, "last_model_path", "") or getattr(callback, "best_model_path", "")
        ckpt = shlex.quote(found) if found else ckpt
    return ("export.merge_lora is not supported for a model sharded with FSDP (the merge needs the whole model "
            "in one process). Export the adapter instead (export.merge_lora: false), or merge it from the "
            f"run's checkpoint: rlhf-lightning export --config {config} --ckpt_path {ckpt} "
            f"--output {shlex.quote(str(dirpath))} --merge_lora")


def export_stage_model(module, dirpath: str | Path, *, merge_lora: bool = False, model=None,
                       base_spec: Optional[ModelSpec] = None) -> Optional[str]:
    """Export ``module.model`` (or ``model``) and ``module.tokenizer`` as a Hugging Face folder
    (``base_spec``, default the module's ``policy_spec``: where a 4-bit base is re-loaded to merge).

    A sharded (FSDP2) model is gathered first: call this on every rank then; rank 0 writes and
    returns the folder, the other ranks return None.
    """
    from rlhf_lightning.errors import ExportError
    from rlhf_lightning.models.export import export_pretrained
    from rlhf_lightning.models.lora import has_adapter
    from rlhf_lightning.models.sharding import full_state_dict, is_sharded

    model = model if model is not None else module.model
    state_dict = None
    if is_sharded(model):
        if merge_lora and has_adapter(model):
            raise ExportError(_merge_advice(module, dirpath))
        state_dict = full_state_dict(model)  # a collective: every rank takes part
        if module.trainer.global_rank != 0:
            return None
    spec = base_spec if base_spec is not None else getattr(module, "policy_spec", None)
    out = export_pretrained(model, module.tokenizer, dirpath, merge_lora=merge_lora, base_spec=spec,
                            state_dict=state_dict)
    return str(out)
