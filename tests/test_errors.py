"""``option_errors``: a library's refusal inside the block becomes an OptionError naming the option;
this package's own exceptions (bugs) and RLHFErrors pass through unchanged."""

from __future__ import annotations

import pytest
import torch

from rlhf_lightning.errors import ConfigError, DataError, OptionError, option_errors
from rlhf_lightning.optim.schedules import WarmupCosineLR


def test_a_library_refusal_names_the_option_and_keeps_the_cause():
    with pytest.raises(OptionError) as info:
        with option_errors("model.init_args.optimizer"):
            torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=-1.0)
    err = info.value
    assert isinstance(err, ConfigError) and err.option == "model.init_args.optimizer"
    assert str(err) == "model.init_args.optimizer: Invalid learning rate: -1.0 (ValueError)"
    assert isinstance(err.cause, ValueError) and err.__cause__ is err.cause


def test_nested_blocks_join_the_option_names():
    with pytest.raises(OptionError, match=r"^model\.init_args\.policy\.lora: boom \(KeyError\)$"):
        with option_errors("model.init_args.policy"), option_errors("lora"):
            {}.__getitem__("boom")  # raised by the interpreter's dict, not by this package


def test_this_packages_own_exceptions_pass_through():
    """A ValueError raised by our code is a bug (or a message of ours), not the library's refusal."""
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    with pytest.raises(ValueError, match="decay must be") as info:
        with option_errors("model.init_args.scheduler"):
            WarmupCosineLR(optimizer, decay="step")
    assert not isinstance(info.value, OptionError)
    with pytest.raises(DataError, match="^as it was$"):
        with option_errors("data.init_args.train"):
            raise DataError("as it was")


def test_other_exception_types_pass_through():
    with pytest.raises(AttributeError):
        with option_errors("model.init_args.policy"):
            torch.no_such_attribute  # noqa: B018
