"""Adapters are found through the `lidm.adapters` entry-point group, so a department's own package
registers its adapters the same way the reference adapters do."""

from __future__ import annotations

from importlib.metadata import entry_points

from lidm.adapter import Adapter
from lidm.errors import ConfigError

GROUP = "lidm.adapters"


def adapters() -> dict[str, Adapter]:
    """Every registered adapter by feed name."""
    found: dict[str, Adapter] = {}
    for ep in entry_points(group=GROUP):
        try:
            obj = ep.load()
        except Exception as exc:
            raise ConfigError(f"adapter {ep.name} ({ep.value}) failed to import: {type(exc).__name__}: {exc}") from exc
        if not isinstance(obj, Adapter):
            raise ConfigError(f"entry point {ep.name} ({ep.value}) is not a lidm.Adapter")
        found[ep.name] = obj
    return dict(sorted(found.items()))


def get_adapter(name: str) -> Adapter:
    """One adapter by feed name, with the known names in the error."""
    registered = adapters()
    try:
        return registered[name]
    except KeyError:
        raise ConfigError(f"no adapter {name}; registered: {', '.join(registered) or 'none'}") from None
