"""Export a trained model as a Hugging Face folder that transformers / peft / vLLM load without us.

Exports are atomic: everything is written into a hidden sibling folder, fsynced and swapped into
place only when complete, so a crash mid-export (disk full, a failing ``save_pretrained``, a SIGKILL,
a power loss) never leaves a half-written folder where a previous good export used to be. An export
only replaces a new or empty folder or an earlier export (marked by ``.rlhf-lightning-export``):
never a folder of the user's own files (:mod:`rlhf_lightning.output_folders`).
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any, Optional, Union

from rlhf_lightning.atomic_paths import atomic_directory
from rlhf_lightning.errors import ExportError
from rlhf_lightning.models.lora import changes_base_weights, has_adapter, merge_into_base, merged_copy
from rlhf_lightning.models.quantization import is_quantized
from rlhf_lightning.models.spec import ModelSpec

log = logging.getLogger(__name__)

__all__ = ["atomic_directory", "export_pretrained"]

ADAPTER_SUBDIR = "adapter"


def _full_precision_merge(model: Any, tokenizer: Any, base_spec: Optional[ModelSpec]) -> Any:
    """Merge a QLoRA adapter into the base re-loaded WITHOUT quantization from ``base_spec``.

    Folding a LoRA delta into 4-bit weights would re-quantize it away (and a 4-bit checkpoint is not
    what vLLM or plain transformers users expect), so the merged export is full precision.
    """
    from rlhf_lightning.models.loading import load_causal_lm, load_sequence_classifier

    if base_spec is None or base_spec.name_or_path is None:
        raise ExportError("merging a 4-bit (QLoRA) model needs base_spec with the base model's "
                          "name_or_path, to re-load it in full precision")
    spec = dataclasses.replace(base_spec, quantization=None, lora=None, gradient_checkpointing=False)
    task_type = str(getattr(model.peft_config[model.active_adapter], "task_type", "CAUSAL_LM"))
    if task_type.endswith("SEQ_CLS"):
        base = load_sequence_classifier(spec, num_labels=model.config.num_labels, tokenizer=tokenizer)
    else:
        base = load_causal_lm(spec, tokenizer=tokenizer)
    return merge_into_base(model, base)


def check_exportable(model: Any, merge_lora: bool) -> None:
    """Refuse an export that would be wrong: an unmerged pissa/olora adapter (it applies to the residual base
    the run made, not to the published base model a user would load it onto)."""
    if has_adapter(model) and not merge_lora and changes_base_weights(model):
        raise ExportError("a pissa/olora LoRA adapter only fits the residual base weights of this run, not the "
                          "original model; export it merged (export.merge_lora: true)")


def export_pretrained(model: Any, tokenizer: Any, out_dir: Union[str, Path], *, merge_lora: bool = False,
                      base_spec: Optional[ModelSpec] = None, state_dict: Optional[dict] = None) -> Path:
    """Write ``model`` (and ``tokenizer``, with its chat template) as a Hugging Face folder; return it.

    * plain model: safetensors weights, ``config.json``, ``generation_config.json`` if it has one;
    * LoRA model, ``merge_lora=False``: the adapter in PEFT format (``adapter_config.json`` +
      ``adapter_model.safetensors``) at ``out_dir``;
    * LoRA model, ``merge_lora=True``: a plain full model at ``out_dir`` (no peft needed to load it)
      and the adapter under ``out_dir/adapter/``. The training model is not modified (a copy is
      merged); a 4-bit base is re-loaded in full precision from ``base_spec`` and merged into.

    ``state_dict`` replaces the model's own tensors (the gathered weights of a sharded model, see
    :func:`rlhf_lightning.models.sharding.full_state_dict`).
    """
    out_dir = Path(out_dir)
    lora = has_adapter(model)
    if merge_lora and not lora:
        log.info("merge_lora=True but the model has no adapter; exporting it as is")
    check_exportable(model, merge_lora)
    with atomic_directory(out_dir) as tmp:
        if lora and merge_lora:
            if is_quantized(model):
                merged = _full_precision_merge(model, tokenizer, base_spec)
            else:
                merged = merged_copy(model)
            merged.save_pretrained(tmp)
            del merged
            if changes_base_weights(model):  # the adapter alone fits only the residual base: not exported
                log.info("pissa/olora adapter: exporting the merged model only")
            else:
                model.save_pretrained(tmp / ADAPTER_SUBDIR)
        else:
            model.save_pretrained(tmp, state_dict=state_dict)
        if tokenizer is not None:
            tokenizer.save_pretrained(tmp)
    return out_dir.expanduser().absolute()
