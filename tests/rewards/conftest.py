"""Fixtures of the reward tests: loopback judge servers."""

from __future__ import annotations

from typing import Callable, Optional

import pytest

from tests.rewards.judge_server import Judge


@pytest.fixture()
def judges():
    """``judges(behave=None)`` starts a :class:`~tests.rewards.judge_server.Judge`; all stop after the test."""
    started: list[Judge] = []

    def start(behave: Optional[Callable] = None) -> Judge:
        started.append(Judge(behave))
        return started[-1]

    yield start
    for judge in started:
        judge.close()
