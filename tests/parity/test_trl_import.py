"""The parity tests skip where TRL is missing, but fail when ``CI`` is set (CI must not go green by
skipping them); before, ``importorskip`` skipped them in CI too."""

from __future__ import annotations

import sys

import pytest

from tests.parity.trl_import import import_trl


@pytest.fixture()
def broken_trl(monkeypatch):
    monkeypatch.setitem(sys.modules, "trl", None)  # ``import trl`` raises ImportError


def test_missing_trl_fails_under_ci(broken_trl, monkeypatch):
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI is set and TRL failed to import"):
        import_trl()


def test_missing_trl_skips_outside_ci(broken_trl, monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="TRL is not importable"):
        import_trl()
