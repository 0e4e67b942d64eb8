"""Training and validation data from a data module's options, shared by the SFT and comparison data."""

from __future__ import annotations

from typing import Any, Callable


def encode_train_val(encode: Callable[..., Any], train_sources: list, val_sources: list,
                     val_fraction: float) -> tuple[Any, Any]:
    """``(train, val)``: validation from its own sources, else ``val_fraction`` held out of each
    training source before encoding (``encode(sources, role, holdout=f)`` returns both parts).

    What ``datasets`` or the tokenizer refuse while reading and encoding (a chat template that raises
    on the rows, say) is a user error naming ``data.init_args.train`` / ``val``."""
    from rlhf_lightning.errors import option_errors

    holdout = val_fraction if not val_sources else 0.0
    train = val = None
    with option_errors("data.init_args.train"):
        if train_sources and holdout:
            train, val = encode(train_sources, "train", holdout=holdout)
        elif train_sources:
            train = encode(train_sources, "train")
    if val_sources:
        with option_errors("data.init_args.val"):
            val = encode(val_sources, "val")
    return train, val
