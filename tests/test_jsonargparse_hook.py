"""The private jsonargparse function that rlhf_lightning/jsonargparse_hook.py wraps: still there, same
parameters, on a version pyproject.toml allows; the installed hook is the one jsonargparse calls."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import jsonargparse
import pytest
import tomllib
from jsonargparse import _from_config, _typehints
from packaging.requirements import Requirement
from packaging.version import Version

from rlhf_lightning import jsonargparse_hook, registry
from rlhf_lightning.errors import PluginError

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


def _requirement() -> Requirement:
    deps = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["project"]["dependencies"]
    return next(Requirement(d) for d in deps if re.match(r"jsonargparse\b", d))


def test_the_wrapped_function_keeps_its_signature():
    original = jsonargparse_hook.hooked_function()  # raises PluginError when gone or changed
    assert tuple(inspect.signature(original).parameters) == ("cls", "name")
    assert original.__module__ == "jsonargparse._typehints"


def test_installed_version_is_tested_and_pyproject_bounds_it():
    installed = Version(jsonargparse.__version__)
    assert (installed.major, installed.minor) in jsonargparse_hook.TESTED, (
        f"jsonargparse {installed} is not among the versions the hook was checked on; check "
        f"{jsonargparse_hook.MODULE}.{jsonargparse_hook.FUNCTION}, then update TESTED and pyproject.toml")
    spec = _requirement().specifier
    assert installed in spec
    newest = max(jsonargparse_hook.TESTED)
    assert Version(f"{newest[0]}.{newest[1] + 1}.0") not in spec, "pyproject.toml needs an upper bound for jsonargparse"


def test_hook_is_what_jsonargparse_calls():
    registry.prepare_for_parsing()
    for module in (_typehints, _from_config):
        hooked = getattr(module, jsonargparse_hook.FUNCTION)
        assert getattr(hooked, "_rlhf_lightning_hook", False), module.__name__
        assert hooked.__wrapped__ is jsonargparse_hook.hooked_function()
    registry.prepare_for_parsing()  # idempotent: not wrapped twice
    assert not getattr(_typehints.resolve_class_path_by_name.__wrapped__, "_rlhf_lightning_hook", False)


@pytest.mark.parametrize("replacement", [None, lambda cls, name, extra: name], ids=["gone", "new-signature"])
def test_a_changed_jsonargparse_is_refused_by_name(monkeypatch, replacement):
    if replacement is None:
        monkeypatch.delattr(_typehints, jsonargparse_hook.FUNCTION)
    else:
        monkeypatch.setattr(_typehints, jsonargparse_hook.FUNCTION, replacement)
    with pytest.raises(PluginError, match="resolve_class_path_by_name"):
        jsonargparse_hook.hooked_function()
