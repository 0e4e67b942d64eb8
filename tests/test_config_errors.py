"""Unwrapping jsonargparse's union errors and naming a bad option by its config path."""

from __future__ import annotations

from jsonargparse import Namespace

from rlhf_lightning.config_errors import as_config_error, option_path, user_error_in
from rlhf_lightning.errors import ConfigError, InvalidOption
from rlhf_lightning.losses.preference import SigmoidLoss
from rlhf_lightning.modules.ppo.config import PPOLoopSpec


def _wrapped(err: Exception) -> ValueError:
    """What jsonargparse raises: our error as the cause of two nested union errors."""
    try:
        try:
            try:
                raise err
            except Exception as inner:
                raise ValueError("Does not validate against any of the Union subtypes") from inner
        except ValueError as middle:
            raise ValueError("Does not validate against any of the Union subtypes") from middle
    except ValueError as outer:
        return outer


def _config(beta=-1.0, clip_eps=0.2):
    """As jsonargparse parses it: plugins as class_path/init_args, option dataclasses as plain namespaces
    of every field (built from the dataclass, so a new field cannot make this stale)."""
    import dataclasses

    from rlhf_lightning.modules.ppo.config import PPOLoopSpec

    loss = Namespace(class_path="rlhf_lightning.losses.preference.SigmoidLoss",
                     init_args=Namespace(beta=beta, label_smoothing=0.0))
    ppo = {f.name: getattr(PPOLoopSpec, f.name, None) for f in dataclasses.fields(PPOLoopSpec)}
    return Namespace(model=Namespace(class_path="x.DPOModule", init_args=Namespace(
        loss=loss, ppo=Namespace(**dict(ppo, clip_eps=clip_eps)))))


def test_innermost_user_error_is_found():
    err = ConfigError("bad")
    assert user_error_in(_wrapped(err)) is err
    assert user_error_in(ValueError("a bug")) is None


def test_plugin_option_is_named_by_its_path():
    try:
        SigmoidLoss(beta=-1.0)
    except InvalidOption as exc:
        err = exc
    assert str(err) == "beta: must be > 0, got -1.0" and isinstance(err, ValueError)
    assert option_path(_config(), err) == "model.init_args.loss.init_args.beta"
    named = as_config_error(_wrapped(err), _config())
    assert str(named) == "model.init_args.loss.init_args.beta: must be > 0, got -1.0"


def test_dataclass_option_is_named_by_its_path():
    try:
        PPOLoopSpec(clip_eps=0.0)
    except InvalidOption as exc:
        err = exc
    assert option_path(_config(clip_eps=0.0), err) == "model.init_args.ppo.clip_eps"


def test_no_matching_node_keeps_the_plain_message():
    err = InvalidOption(SigmoidLoss, "beta", "must be > 0", -5.0)
    assert option_path(_config(), err) is None
    assert as_config_error(_wrapped(err), _config()) is err
