"""Where adapters are found: every module of the ``lidm_adapters`` package that defines ``adapter``
(named ``<department>.<module>``, so dropping a file in is enough), plus the ``lidm.adapters``
entry-point group through which a department's own package registers its adapters.

One broken adapter does not hide the others: it is reported by name and only asking for it fails.
"""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil
from functools import lru_cache
from importlib.metadata import entry_points

from lidm.adapter import Adapter
from lidm.errors import ConfigError

GROUP = "lidm.adapters"
PACKAGE = "lidm_adapters"


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def _named(adapter: Adapter, name: str) -> Adapter:
    """The feed is named where it is registered; an explicit different name= is a mistake worth saying."""
    if adapter.name == name:
        return adapter
    if adapter.name != adapter.contract:
        raise ConfigError(f"adapter registered as {name} calls itself {adapter.name}; drop name= or make them agree")
    return dataclasses.replace(adapter, name=name)


@lru_cache(maxsize=1)
def _scan() -> tuple[dict[str, Adapter], dict[str, str]]:
    found: dict[str, Adapter] = {}
    broken: dict[str, str] = {}
    try:
        package = importlib.import_module(PACKAGE)
        modules = [
            m.name
            for m in pkgutil.walk_packages(package.__path__, prefix=f"{PACKAGE}.")
            if not m.ispkg and not m.name.rsplit(".", 1)[-1].startswith("_")
        ]
    except ImportError:
        modules = []
    for module_name in modules:
        name = module_name.removeprefix(f"{PACKAGE}.")
        try:
            obj = getattr(importlib.import_module(module_name), "adapter", None)
        except Exception as exc:  # an adapter module is user code: report it, keep the others
            broken[name] = f"{module_name} failed to import: {_describe(exc)}"
            continue
        if obj is None:
            continue
        if not isinstance(obj, Adapter):
            broken[name] = f"{module_name}.adapter is not a lidm.Adapter"
            continue
        try:
            found[name] = _named(obj, name)
        except ConfigError as exc:
            broken[name] = str(exc)
    for ep in entry_points(group=GROUP):
        try:
            obj = ep.load()
        except Exception as exc:
            broken[ep.name] = f"entry point {ep.name} ({ep.value}) failed to import: {_describe(exc)}"
            continue
        if not isinstance(obj, Adapter):
            broken[ep.name] = f"entry point {ep.name} ({ep.value}) is not a lidm.Adapter"
            continue
        try:
            obj = _named(obj, ep.name)
        except ConfigError as exc:
            broken[ep.name] = str(exc)
            continue
        if ep.name in found and found[ep.name] != obj:
            broken[ep.name] = f"two adapters are named {ep.name} (module and entry point {ep.value})"
            continue
        found[ep.name] = obj
    for name in broken:
        found.pop(name, None)
    return dict(sorted(found.items())), dict(sorted(broken.items()))


def refresh() -> None:
    """Forget what was found (after a new adapter file was written in this process)."""
    _scan.cache_clear()
    importlib.invalidate_caches()


def adapters() -> dict[str, Adapter]:
    """Every adapter that loads, by feed name."""
    return dict(_scan()[0])


def broken() -> dict[str, str]:
    """Adapters that failed to load, with why."""
    return dict(_scan()[1])


def get_adapter(name: str) -> Adapter:
    """One adapter by feed name, with the known names in the error."""
    found, failed = _scan()
    if name in failed:
        raise ConfigError(f"adapter {name}: {failed[name]}")
    try:
        return found[name]
    except KeyError:
        raise ConfigError(f"no adapter {name}; registered: {', '.join(found) or 'none'}") from None
