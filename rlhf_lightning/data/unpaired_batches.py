"""Tokenise unpaired rows and collate them with the mismatched pairs KTO's KL reference point needs.

A row is encoded exactly as a DPO response is (:func:`~rlhf_lightning.data.comparison_batches.encode_comparisons`:
the prompt + completion text tokenised once, the completion's tokens located by character offsets)
and kept as ``prompt_ids`` + ``completion_ids``, so that the collator can put row ``i``'s prompt in
front of another row's completion without tokenising again.

Mismatched pairs (KTO, Ethayarajh et al. 2024, §4.1; TRL ``KTOTrainer``): in a batch of ``B`` rows,
prompt ``i`` is paired with completion ``i - 1`` (row 0 with row ``B - 1``): the completions are
rotated by one, so the mismatched completions are the very completions of the batch. A batch of one
row has no mismatched pair (its rotation is the row itself); the KTO stage refuses it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from rlhf_lightning.data.comparison_batches import ComparisonStats, Truncation, encode_comparisons
from rlhf_lightning.data.encoding import IGNORE_INDEX


def encode_unpaired(rows: Sequence[Mapping[str, Any]], tokenizer: Any, *, max_length: int,
                    truncation: Truncation = "truncate", source: str = "data") -> tuple[list[dict], ComparisonStats]:
    """Encode normalised unpaired rows (see :mod:`rlhf_lightning.data.unpaired`).

    Returns ``[{"prompt_ids", "completion_ids", "label"}]`` and the counts. Truncation as for
    comparisons: ``truncate`` keeps the first ``max_length`` tokens (a row whose prompt leaves no
    completion token is dropped), ``drop`` drops longer rows, ``error`` raises naming the row.
    """
    # the label travels as the comparison's one score (rows are dropped whole, so it stays with its row)
    comps = [{"prompt": r["prompt"], "responses": [r["completion"]], "scores": [1.0 if r["label"] else 0.0]}
             for r in rows]
    encoded, stats = encode_comparisons(comps, tokenizer, max_length=max_length, truncation=truncation,
                                        source=source, encoding="causal")
    out = []
    for enc in encoded:
        ids, labels = enc["responses"][0]["input_ids"], enc["responses"][0]["labels"]
        start = next(t for t, label in enumerate(labels) if label != IGNORE_INDEX)
        out.append({"prompt_ids": ids[:start], "completion_ids": ids[start:], "label": enc["scores"][0] == 1.0})
    return out, stats


def _pad(seqs: list[list[int]], width: int, value: int) -> torch.Tensor:
    out = torch.full((len(seqs), width), value, dtype=torch.long)
    for i, s in enumerate(seqs):
        out[i, : len(s)] = torch.as_tensor(s, dtype=torch.long)
    return out


class UnpairedCollator:
    """Collate ``B`` encoded rows into right-padded ``(B, T)`` tensors plus the mismatched pairs.

    Returns ``input_ids``, ``attention_mask``, ``labels`` (``-100`` on prompt and padding) for rows
    ``(x_i, y_i)``; ``KL_input_ids``, ``KL_attention_mask``, ``KL_labels`` for ``(x_i, y_{i-1})``
    (cut to ``max_length`` tokens, as TRL cuts them); ``label`` ``(B,)`` bool. All six tensors share
    one width ``T``, so a stage can run both sets of rows through the model in one forward pass.
    """

    def __init__(self, pad_token_id: int, max_length: int | None = None) -> None:
        if pad_token_id is None:
            raise ValueError("pad_token_id is None; set a pad token on the tokenizer")
        self.pad_token_id = pad_token_id
        self.max_length = max_length

    def _rows(self, prompts: list[list[int]], completions: list[list[int]]) -> tuple[list, list]:
        ids, labels = [], []
        for p, c in zip(prompts, completions, strict=True):
            seq, lab = p + c, [IGNORE_INDEX] * len(p) + list(c)
            if self.max_length is not None:
                seq, lab = seq[: self.max_length], lab[: self.max_length]
            ids.append(seq)
            labels.append(lab)
        return ids, labels

    def __call__(self, rows: Sequence[Mapping[str, Any]]) -> dict[str, torch.Tensor]:
        prompts = [list(r["prompt_ids"]) for r in rows]
        completions = [list(r["completion_ids"]) for r in rows]
        ids, labels = self._rows(prompts, completions)
        kl_ids, kl_labels = self._rows(prompts, completions[-1:] + completions[:-1])
        width = max(len(s) for s in ids + kl_ids)
        batch = {}
        for prefix, seqs, labs in (("", ids, labels), ("KL_", kl_ids, kl_labels)):
            batch[f"{prefix}input_ids"] = _pad(seqs, width, self.pad_token_id)
            batch[f"{prefix}attention_mask"] = _pad([[1] * len(s) for s in seqs], width, 0)
            batch[f"{prefix}labels"] = _pad(labs, width, IGNORE_INDEX)
        batch["label"] = torch.tensor([bool(r["label"]) for r in rows], dtype=torch.bool)
        return batch
