"""Fixtures shared with the CLI tests."""

from tests.cli.conftest import sft_files  # noqa: F401 - a fixture: pytest finds it by name here
