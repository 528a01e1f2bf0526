"""Consumers of the central database (departments, county bureaus, the platform) and their groups."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml

from lidm.errors import ContractError

FILE = "consumers.yaml"


@dataclass(frozen=True)
class Consumer:
    id: str
    name: str
    kind: str  # platform | department | county
    department: str | None = None
    districts: tuple[str, ...] = ()


@dataclass(frozen=True)
class Consumers:
    city: str
    districts: dict[str, str]
    members: dict[str, Consumer]
    groups: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def expand(self, name: str) -> list[Consumer]:
        """A consumer id or a group name as the consumers it stands for."""
        if name in self.members:
            return [self.members[name]]
        if name in self.groups:
            return [self.members[m] for m in self.groups[name]]
        raise KeyError(name)

    def known(self, name: str) -> bool:
        return name in self.members or name in self.groups


def load_consumers(directory: Path) -> Consumers:
    """contracts/consumers.yaml, refused whole with the file named when malformed."""
    path = directory / FILE
    try:
        doc = yaml.safe_load(path.read_text("utf-8"))
        city = doc["city"]
        members = {
            cid: Consumer(
                id=cid,
                name=c["name"],
                kind=c["kind"],
                department=c.get("department"),
                districts=tuple(str(d) for d in c.get("districts", ())),
            )
            for cid, c in doc["consumers"].items()
        }
        groups = {g: tuple(m) for g, m in (doc.get("groups") or {}).items()}
    except FileNotFoundError:
        raise ContractError(f"{path}: missing; grants name consumers declared there") from None
    except (yaml.YAMLError, KeyError, TypeError, AttributeError) as exc:
        raise ContractError(f"{path}: malformed consumers file ({type(exc).__name__}: {exc})") from None
    for g, ids in groups.items():
        unknown = [m for m in ids if m not in members]
        if unknown:
            raise ContractError(f"{path}: group {g} names unknown consumer {unknown[0]}")
    return Consumers(
        city=city["name"], districts={str(k): v for k, v in city["districts"].items()}, members=members, groups=groups
    )
