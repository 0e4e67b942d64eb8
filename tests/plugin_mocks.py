"""Helpers for tests that mock entry points: fake distributions and classes to register."""

from __future__ import annotations

import importlib
from importlib import metadata

import pytest

from rlhf_lightning import ConstraintChecker, RewardFunction, registry


class GoodReward(RewardFunction):
    """A mocked third-party reward: scores 2.0 for every sample."""

    def __init__(self, value: float = 2.0) -> None:
        super().__init__()
        self.value = value

    def __call__(self, prompts, completions, **columns):
        return [self.value] * len(prompts)


class NotAReward:
    """Has the right shape but does not subclass RewardFunction."""

    def __call__(self, prompts, completions, **columns):
        return [0.0] * len(prompts)


class GoodConstraint(ConstraintChecker):
    """A mocked third-party constraint: cost 1 for every sample."""

    def __call__(self, prompts, completions, **columns):
        return [1.0] * len(prompts)


def not_a_class(prompts, completions, **columns):
    return [0.0] * len(prompts)


class FakeDist:
    def __init__(self, name: str, version: str = "1.2.3") -> None:
        self.name, self.version = name, version


class FakeEntryPoint:
    """Quacks like importlib.metadata.EntryPoint (name, value, group, dist, load)."""

    def __init__(self, name: str, value: str, group: str, dist: str = "acme-rlhf-plugins", version: str = "1.2.3"):
        self.name, self.value, self.group = name, value, group
        self.dist = FakeDist(dist, version)

    def load(self):
        module, _, attr = self.value.partition(":")
        obj = importlib.import_module(module)
        for part in attr.split("."):
            obj = getattr(obj, part)
        return obj


def install_fake_entry_points(monkeypatch: pytest.MonkeyPatch, extra: list[FakeEntryPoint]) -> None:
    """Add ``extra`` to the real entry points, and reset discovery (again on teardown, by the fixture)."""
    real = metadata.entry_points

    def entry_points(**kwargs):
        found = list(real(**kwargs))
        return found + [ep for ep in extra if ep.group == kwargs.get("group")]

    monkeypatch.setattr(metadata, "entry_points", entry_points)
    registry.reset()


M = "tests.plugin_mocks"
