"""The tokenizer every data module uses: the model's, linked into ``data.init_args.tokenizer`` by the CLI."""

from __future__ import annotations

from rlhf_lightning.errors import ConfigError


def linked_tokenizer(datamodule):
    """Load ``datamodule.tokenizer_path`` once (with ``datamodule.chat_template``, linked from the model's
    ``chat_template`` by the CLI, replacing its template) and cache it on ``datamodule.tokenizer``."""
    if datamodule.tokenizer is None:
        if not datamodule.tokenizer_path:
            raise ConfigError("no tokenizer: set the model's policy/backbone name_or_path or tokenizer (the CLI "
                              "links it to the data module), or data.init_args.tokenizer")
        from rlhf_lightning.models.loading import load_tokenizer

        datamodule.tokenizer = load_tokenizer(datamodule.tokenizer_path,
                                              chat_template=getattr(datamodule, "chat_template", None))
    return datamodule.tokenizer
