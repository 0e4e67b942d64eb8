"""Plugin registry: entry-point discovery, lookup by name, listing, and YAML name resolution.

Every extension kind is an entry-point group (``rlhf_lightning.<group>``); built-ins are declared in
this project's ``pyproject.toml`` exactly like a third-party distribution declares its own, so both
are found, listed and resolved the same way.

Discovery runs once per process (the first call to any function below, or
:func:`prepare_for_parsing`, which the CLI calls before it builds its parser). Each entry point is
loaded then; one that fails to import, is not a class, or is not a subclass of its group's base
class is recorded as *broken* with the error, named by entry-point name and distribution, and
does not affect the others. Two entry points with the same name in one group make that name
ambiguous: :func:`get` refuses it and names both distributions.

``RLHF_LIGHTNING_DISABLE_PLUGINS=1`` turns third-party discovery off: only entry points whose
distribution is ``rlhf-lightning`` (the built-ins) stay.
"""

from __future__ import annotations

import importlib
import inspect
import os
import re
from dataclasses import dataclass
from importlib import metadata
from typing import Any

from rlhf_lightning.errors import PluginError

#: short group name -> (entry-point group, module of the base class, base class name)
GROUPS: dict[str, tuple[str, str, str]] = {
    "rewards": ("rlhf_lightning.rewards", "rlhf_lightning.rewards.base", "RewardFunction"),
    "constraints": ("rlhf_lightning.constraints", "rlhf_lightning.constraints.base", "ConstraintChecker"),
    "preference_losses": ("rlhf_lightning.preference_losses", "rlhf_lightning.losses.base", "PreferenceLoss"),
    "reward_losses": ("rlhf_lightning.reward_losses", "rlhf_lightning.losses.base", "RewardLoss"),
    "unpaired_losses": ("rlhf_lightning.unpaired_losses", "rlhf_lightning.losses.base", "UnpairedPreferenceLoss"),
    "advantage_estimators": (
        "rlhf_lightning.advantage_estimators", "rlhf_lightning.algorithms.base", "AdvantageEstimator"),
}

DISABLE_ENV = "RLHF_LIGHTNING_DISABLE_PLUGINS"
BUILTIN_DISTRIBUTION = "rlhf-lightning"


def _normalize_dist(name: str | None) -> str | None:
    # PEP 503 normalisation, so "rlhf_lightning" and "RLHF-Lightning" both count as the project.
    return re.sub(r"[-_.]+", "-", name).lower() if name else None


def plugins_disabled() -> bool:
    """Whether ``RLHF_LIGHTNING_DISABLE_PLUGINS`` asks for built-ins only."""
    return os.environ.get(DISABLE_ENV, "").strip().lower() in {"1", "true", "yes", "on"}


def base_class(group: str) -> type:
    """The base class every plugin of ``group`` must subclass."""
    _check_group(group)
    _, module, name = GROUPS[group]
    return getattr(importlib.import_module(module), name)


@dataclass(frozen=True)
class PluginInfo:
    """One discovered entry point: what ``rlhf-lightning plugins`` prints."""

    group: str
    name: str
    value: str  # the entry point's "module:attr"
    distribution: str | None
    version: str | None
    cls: type | None = None
    error: str | None = None  # set when the plugin is broken

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def class_path(self) -> str:
        """Dotted import path of the class (what jsonargparse writes back into a dumped config)."""
        if self.cls is not None:
            return f"{self.cls.__module__}.{self.cls.__qualname__}"
        return self.value.replace(":", ".")

    @property
    def builtin(self) -> bool:
        return _normalize_dist(self.distribution) == BUILTIN_DISTRIBUTION

    @property
    def description(self) -> str:
        """First line of the class's own docstring (not an inherited one), or the error."""
        if self.error is not None:
            return f"BROKEN: {self.error}"
        doc = self.cls.__dict__.get("__doc__") if self.cls is not None else None
        return inspect.cleandoc(doc).splitlines()[0] if doc and doc.strip() else ""

    def label(self) -> str:
        return f"{self.group} plugin {self.name!r} from {self.distribution or 'unknown distribution'}"


class _State:
    discovered: dict[str, list[PluginInfo]] | None = None
    hook_installed = False


def _check_group(group: str) -> None:
    if group not in GROUPS:
        raise PluginError(f"Unknown plugin group {group!r}; groups are: {', '.join(GROUPS)}")


def _entry_points(ep_group: str) -> list[Any]:
    # Looked up through the module attribute so tests can monkeypatch importlib.metadata.entry_points.
    return list(metadata.entry_points(group=ep_group))


def _load(group: str, ep: Any) -> PluginInfo:
    dist = getattr(ep, "dist", None)
    dist_name = getattr(dist, "name", None) if dist is not None else None
    version = getattr(dist, "version", None) if dist is not None else None
    info = dict(group=group, name=ep.name, value=ep.value, distribution=dist_name, version=version)
    try:
        obj = ep.load()
    except Exception as exc:  # noqa: BLE001 - a broken plugin must not take the process down
        return PluginInfo(**info, error=f"import of {ep.value!r} failed: {type(exc).__name__}: {exc}")
    base = base_class(group)
    if not inspect.isclass(obj):
        return PluginInfo(**info, error=f"{ep.value!r} is not a class (got {type(obj).__name__})")
    if not issubclass(obj, base):
        return PluginInfo(**info, cls=obj, error=f"{ep.value!r} is not a subclass of {base.__module__}.{base.__name__}")
    return PluginInfo(**info, cls=obj)


def discover(*, force: bool = False) -> dict[str, list[PluginInfo]]:
    """Find and load every plugin of every group (once per process unless ``force``)."""
    if _State.discovered is not None and not force:
        return _State.discovered
    disabled = plugins_disabled()
    found: dict[str, list[PluginInfo]] = {}
    for group, (ep_group, _, _) in GROUPS.items():
        seen: set[tuple[str, str, str | None]] = set()
        infos = []
        for ep in _entry_points(ep_group):
            dist = getattr(getattr(ep, "dist", None), "name", None)
            if disabled and _normalize_dist(dist) != BUILTIN_DISTRIBUTION:
                continue
            key = (ep.name, ep.value, _normalize_dist(dist))
            if key in seen:  # the same distribution seen twice on sys.path is not a conflict
                continue
            seen.add(key)
            infos.append(_load(group, ep))
        found[group] = sorted(infos, key=lambda i: (i.name, i.distribution or ""))
    _State.discovered = found
    return found


def reset() -> None:
    """Forget discovery results (tests; after installing a package in-process)."""
    _State.discovered = None


def plugins(group: str | None = None) -> list[PluginInfo]:
    """Every discovered plugin (working and broken), optionally of one group, sorted by group and name."""
    found = discover()
    if group is not None:
        _check_group(group)
        return list(found[group])
    return [info for g in GROUPS for info in found[g]]


def broken(group: str | None = None) -> list[PluginInfo]:
    """The plugins that could not be loaded or are invalid."""
    return [info for info in plugins(group) if not info.ok]


def names(group: str) -> list[str]:
    """Sorted names of the usable plugins of ``group`` (broken and ambiguous names left out)."""
    infos = plugins(group)
    counts: dict[str, int] = {}
    for info in infos:
        counts[info.name] = counts.get(info.name, 0) + 1
    return sorted({i.name for i in infos if i.ok and counts[i.name] == 1})


def get(group: str, name: str) -> type:
    """The plugin class registered as ``name`` in ``group``.

    Raises :class:`PluginError` for an unknown name (listing the available ones), a broken plugin
    (with its error and distribution) or a name that several distributions register.
    """
    matches = [i for i in plugins(group) if i.name == name]
    if not matches:
        raise PluginError(
            f"Unknown {group} plugin {name!r}. Available: {', '.join(names(group)) or '(none)'}"
            + ("" if not plugins_disabled() else f" (third-party plugins are off: {DISABLE_ENV} is set)")
        )
    if len(matches) > 1:
        providers = "; ".join(f"{i.value} from {i.distribution}" for i in matches)
        raise PluginError(f"Duplicate {group} plugin name {name!r}, registered by: {providers}. "
                          "Uninstall one of the distributions or use the full class path.")
    info = matches[0]
    if not info.ok:
        raise PluginError(f"{info.label()} is broken: {info.error}")
    assert info.cls is not None
    return info.cls


def name_of(obj: Any) -> str | None:
    """The entry-point name under which ``obj``'s class (or ``obj``, a class) is registered, if any."""
    cls = obj if inspect.isclass(obj) else type(obj)
    for info in plugins():
        if info.cls is cls and info.ok:
            return info.name
    return None


def describe(obj: Any) -> str:
    """A short label for error messages: ``'length' (rlhf_lightning.rewards.rules.LengthReward)``."""
    cls = obj if inspect.isclass(obj) else type(obj)
    path = f"{cls.__module__}.{cls.__qualname__}"
    name = name_of(cls) if _State.discovered is not None else None
    return f"{name!r} ({path})" if name else path


# --------------------------------------------------------------------------------------------- #
# YAML: class_path may be an entry-point name, a class name, or an import path.
# --------------------------------------------------------------------------------------------- #

def _plugin_types(declared: Any) -> list[type]:
    """The plain classes in ``declared`` (a type or tuple of types) that subclass some group's base."""
    candidates = declared if isinstance(declared, tuple) else (declared,)
    bases = tuple(base_class(g) for g in GROUPS)
    out = []
    for typ in candidates:
        try:
            if inspect.isclass(typ) and issubclass(typ, bases):
                out.append(typ)
        except TypeError:  # generic aliases and other non-class type hints
            continue
    return out


def resolve_class_path(declared: type | tuple[type, ...], name: str) -> str | None:
    """Import path of the plugin registered as ``name`` whose class fits the declared type.

    ``declared`` is the type the config option is annotated with (a group base class, a subclass of
    one, or a tuple of those); returns ``None`` when ``name`` is no entry-point name for it.
    """
    for typ in _plugin_types(declared):
        for group in GROUPS:
            if not issubclass(typ, base_class(group)):
                continue
            if not any(i.name == name for i in plugins(group)):
                continue
            cls = get(group, name)  # raises for broken / duplicate names, naming them
            if issubclass(cls, typ):
                return f"{cls.__module__}.{cls.__qualname__}"
    return None


def available_for(declared: type | tuple[type, ...]) -> str:
    """Human-readable list of the entry-point names usable for a declared plugin type ('' if none)."""
    parts = []
    for typ in _plugin_types(declared):
        for group in GROUPS:
            if issubclass(typ, base_class(group)):
                usable = [n for n in names(group) if issubclass(get(group, n), typ)]
                parts.append(f"Available {group}: {', '.join(usable) or '(none)'}")
    return "; ".join(parts) + ("; or give a class name or full import path" if parts else "")


def prepare_for_parsing() -> None:
    """Make plugins usable as ``class_path`` in YAML; the CLI calls this once before building its parser.

    - Discovery loads every plugin class, so jsonargparse's own class-name resolution (which scans
      the imported subclasses of the declared base class) finds them by class name.
    - Entry-point names resolve through :mod:`rlhf_lightning.jsonargparse_hook` (a no-op for types that
      are not plugin bases), installed once.
    """
    discover()
    if _State.hook_installed:
        return
    from rlhf_lightning import jsonargparse_hook

    jsonargparse_hook.install(resolve_class_path, available_for)
    _State.hook_installed = True
