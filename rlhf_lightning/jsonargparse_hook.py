"""The one place this package reaches into jsonargparse's private API: entry-point names as ``class_path``.

jsonargparse has no public hook for class-name aliases, so its name-resolution function
``jsonargparse._typehints.resolve_class_path_by_name(cls, name) -> str`` (also imported by
``jsonargparse._from_config``) is wrapped. ``pyproject.toml`` bounds jsonargparse to the versions where
this was checked (:data:`TESTED`), and ``tests/test_jsonargparse_hook.py`` fails when the function
moves or changes its signature.
"""

from __future__ import annotations

import inspect
from typing import Callable, Optional

from rlhf_lightning.errors import PluginError

#: the private function wrapped, its module, and its parameters (jsonargparse 4.53)
MODULE, FUNCTION, PARAMETERS = "jsonargparse._typehints", "resolve_class_path_by_name", ("cls", "name")
#: jsonargparse versions (major, minor) the hook was checked on; keep in step with pyproject.toml
TESTED = ((4, 53),)


def hooked_function() -> Callable:
    """jsonargparse's ``resolve_class_path_by_name``; PluginError if it is gone or its parameters changed."""
    import importlib

    module = importlib.import_module(MODULE)
    original = getattr(module, FUNCTION, None)
    if original is None or tuple(inspect.signature(original).parameters) != PARAMETERS:
        raise PluginError(f"This jsonargparse has no {MODULE}.{FUNCTION}{PARAMETERS}; entry-point names cannot be "
                          "used as class_path (use the class name or import path, or a jsonargparse version "
                          "that rlhf-lightning's pyproject.toml allows).")
    return getattr(original, "__wrapped__", original)


def install(resolve: Callable[[object, str], Optional[str]], available: Callable[[object], str]) -> None:
    """Wrap ``resolve_class_path_by_name`` once: a dot-free ``name`` for which ``resolve(cls, name)`` gives an
    import path resolves to it; a dot-free name jsonargparse cannot resolve either, for a type where
    ``available(cls)`` lists plugins, is a ValueError naming them; anything else is jsonargparse's own."""
    from jsonargparse import _from_config, _typehints

    current = getattr(_typehints, FUNCTION, None)
    if getattr(current, "_rlhf_lightning_hook", False):
        return
    original = hooked_function()

    def resolve_class_path_by_name(cls, name):  # same signature as jsonargparse's
        if isinstance(name, str) and "." not in name:
            path = resolve(cls, name)
            if path is not None:
                return path
            resolved = original(cls, name)
            if "." not in resolved:
                hint = available(cls)
                if hint:  # a plugin type: say what exists instead of jsonargparse's "expected a dot path"
                    raise ValueError(f"Unknown plugin {name!r}. {hint}")
            return resolved
        return original(cls, name)

    resolve_class_path_by_name.__wrapped__ = original  # type: ignore[attr-defined]
    resolve_class_path_by_name._rlhf_lightning_hook = True  # type: ignore[attr-defined]
    setattr(_typehints, FUNCTION, resolve_class_path_by_name)
    if getattr(_from_config, FUNCTION, None) is original:
        setattr(_from_config, FUNCTION, resolve_class_path_by_name)
