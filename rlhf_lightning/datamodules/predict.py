"""``rlhf-lightning predict`` data, the same for every data module: prompt rows rendered for generation.

A row has a ``prompt`` string or a ``messages`` list (a trailing assistant turn is dropped from the
prompt); it keeps its scalar columns and ``messages`` (written back out with each prediction) and
gains ``text``, the prompt as the model continues it. Batches are left-padded
(:class:`~rlhf_lightning.data.prompts.PromptCollator`), in file order.
"""

from __future__ import annotations

from typing import Optional

from torch.utils.data import DataLoader

from rlhf_lightning.errors import ConfigError, DataError, option_errors


def load_predict_rows(sources: list, tokenizer) -> list[dict]:
    """Read every row of ``sources`` (``data.predict``), check its prompt and render it into ``text``;
    what ``datasets`` or the tokenizer refuse is a user error naming ``data.init_args.predict``."""
    with option_errors("data.init_args.predict"):
        return _load_predict_rows(sources, tokenizer)


def _load_predict_rows(sources: list, tokenizer) -> list[dict]:
    from rlhf_lightning.data.prompts import prompt_messages, render_prompt
    from rlhf_lightning.data.sources import load_source

    if not sources:
        raise ConfigError("data.predict is empty: give a prompt file (rows with 'prompt' or 'messages')")
    rows = []
    for src in sources:
        table = load_source(src)
        if "prompt" not in table.column_names and "messages" not in table.column_names:
            raise DataError(f"{src.path}: prompt rows need a 'prompt' or 'messages' column; found {table.column_names}")
        for i, row in enumerate(table):
            prompt = prompt_messages(row, source=src.path, index=i)
            out = {k: v for k, v in row.items()
                   if isinstance(v, (str, int, float, bool)) or v is None or (k == "messages" and isinstance(v, list))}
            out["text"] = render_prompt(tokenizer, prompt)
            rows.append(out)
    keys = {k: None for r in rows for k in r}  # sources with different columns: every row gets every key
    return [{k: r.get(k) for k in keys} for r in rows]


def predict_loader(datamodule, rows: list[dict], max_prompt_length: Optional[int]) -> DataLoader:
    """Left-padded prompt batches of ``eval_batch_size`` (default ``batch_size``) rows, in order;
    a prompt longer than ``max_prompt_length`` tokens keeps its last tokens."""
    from rlhf_lightning.data.prompts import PromptCollator

    hp = datamodule.hparams
    return datamodule.eval_loader(rows, batch_size=hp.eval_batch_size or hp.batch_size, num_workers=0,
                                  collate_fn=PromptCollator(datamodule._load_tokenizer(), max_prompt_length))
