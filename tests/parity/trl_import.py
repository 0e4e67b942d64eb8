"""TRL for the parity tests: skipped where it is not installed (it is a dev dependency only), but a
failure when the environment variable ``CI`` is set, so CI cannot go green by skipping them."""

from __future__ import annotations

import os

import pytest

INSTALL = "pip install 'trl==1.16.*' --no-deps"


def import_trl():
    """``import trl``; at module level of a test file (a failure there fails its collection)."""
    try:
        import trl
    except Exception as exc:  # ImportError, or a broken install (e.g. an incompatible transformers)
        if os.environ.get("CI"):
            pytest.fail(f"CI is set and TRL failed to import ({type(exc).__name__}: {exc}); the parity tests "
                        f"must run in CI: {INSTALL}", pytrace=False)
        pytest.skip(f"TRL is not importable ({type(exc).__name__}: {exc}); it is a dev dependency for the parity "
                    f"tests: {INSTALL}", allow_module_level=True)
    return trl
