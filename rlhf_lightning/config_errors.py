"""Find the user error that jsonargparse wrapped, and name its option by its full config path.

jsonargparse builds plugins and option dataclasses while it resolves a union or subclass type; a
:class:`~rlhf_lightning.errors.ConfigError` raised there reaches the caller wrapped, once per nesting
level, in ``ValueError("Does not validate against any of the Union subtypes ...")``. The CLI unwraps it
with :func:`user_error_in` and, for an :class:`~rlhf_lightning.errors.InvalidOption`, prefixes the
path of the config node that built the refusing object (:func:`option_path`).
"""

from __future__ import annotations

import dataclasses
import sys
from typing import Any, Iterator, Optional

from rlhf_lightning.errors import ConfigError, InvalidOption, RLHFError


def user_error_in(exc: BaseException) -> Optional[RLHFError]:
    """The innermost :class:`RLHFError` in ``exc``'s chain of causes and contexts (``exc`` included)."""
    found, seen = None, set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, RLHFError):
            found = exc
        exc = exc.__cause__ or exc.__context__
    return found


def _nodes(node: Any, path: str) -> Iterator[tuple[str, Any]]:
    yield path, node
    items = vars(node).items() if hasattr(node, "__dict__") and not isinstance(node, type) else (
        node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, (list, tuple)) else ())
    for key, child in items:
        yield from _nodes(child, f"{path}.{key}" if path else str(key))


def _get(node: Any, key: str) -> Any:
    """``node[key]`` for a dict or Namespace; a dotted ``key`` (``generation.top_k``) walks nested nodes."""
    for part in key.split("."):
        node = node.get(part, _MISSING) if isinstance(node, dict) else getattr(node, part, _MISSING)
        if node is _MISSING:
            break
    return node


_MISSING = object()


def option_path(config: Any, err: InvalidOption) -> Optional[str]:
    """Dotted path of ``err.option`` in the parsed ``config``: the node whose ``class_path`` is the owner's
    class (``...init_args.<option>``) or, for an option dataclass, the node with the owner's fields; the
    first one holding ``err.value`` wins. ``None`` when no node matches."""
    owner = err.owner
    if owner is None:
        return None
    fields = {f.name for f in dataclasses.fields(owner)} if dataclasses.is_dataclass(owner) else None
    for path, node in _nodes(config, ""):
        if isinstance(node, (str, bytes, int, float, bool)) or node is None:
            continue
        if _names_class(_get(node, "class_path"), owner):
            holder, prefix = _get(node, "init_args"), f"{path}.init_args"
        elif fields and fields <= set(vars(node) if hasattr(node, "__dict__") else node if isinstance(node, dict) else ()):
            holder, prefix = node, path
        else:
            continue
        if holder is not _MISSING and holder is not None and _same(_get(holder, err.option), err.value):
            return f"{prefix}.{err.option}"
    return None


def _names_class(class_path: Any, owner: type) -> bool:
    """``class_path`` is ``owner``: its defining path, or a re-export of it (``rlhf_lightning.modules.ppo.
    PPOModule`` for the class defined in ``modules/ppo/loop.py``), resolved only among imported modules."""
    if not isinstance(class_path, str) or "." not in class_path:
        return False
    if class_path == f"{owner.__module__}.{owner.__qualname__}":
        return True
    module, _, name = class_path.rpartition(".")
    return name == owner.__name__ and getattr(sys.modules.get(module), name, None) is owner


def _same(a: Any, b: Any) -> bool:
    try:
        return bool(a == b) or (type(a) in (list, tuple) and list(a) == list(b))
    except Exception:  # noqa: BLE001 - values that cannot compare are simply no match
        return False


def as_config_error(exc: BaseException, config: Any) -> Optional[RLHFError]:
    """The user error behind ``exc``, an :class:`InvalidOption` renamed by its config path; ``None`` if
    ``exc`` carries none (a bug: let it raise with its traceback)."""
    err = user_error_in(exc)
    if isinstance(err, InvalidOption) and config is not None:
        path = option_path(config, err)
        if path is not None:
            named = ConfigError(f"{path}: {err.rule}, got {err.value!r}")
            named.__cause__ = err
            return named
    return err
