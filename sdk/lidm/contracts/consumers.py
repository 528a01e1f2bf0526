"""Consumers of the central database (departments, county bureaus, street offices, the platform) and their groups.

County and street consumers are not written out one by one: they are generated from the city's division table
(``city.districts``, each with its streets) for the departments ``levels`` lists, so a city of 9 districts and
10 departments does not keep 90 entries by hand, and a new street is one line of the table.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from lidm.errors import ContractError

FILE = "consumers.yaml"
LEVELS = ("city", "county", "street")


@dataclass(frozen=True)
class Consumer:
    id: str
    name: str
    kind: str  # platform | department | county | street | any other a deployment declares (e.g. charity)
    department: str | None = None
    districts: tuple[str, ...] = ()
    streets: tuple[str, ...] = ()

    @property
    def level(self) -> str:
        """Where the consumer acts: street and county consumers at theirs, every other at city level."""
        return self.kind if self.kind in ("county", "street") else "city"

    @property
    def acts_for(self) -> str:
        """The department whose warnings it holds: its own id for a city department."""
        return self.department or self.id


@dataclass(frozen=True)
class Consumers:
    city: str
    districts: dict[str, str]
    members: dict[str, Consumer]
    groups: dict[str, tuple[str, ...]] = field(default_factory=dict)
    streets: dict[str, str] = field(default_factory=dict)  # 9-digit code -> name
    district_ids: dict[str, str] = field(default_factory=dict)  # district code -> id used in consumer ids

    def expand(self, name: str) -> list[Consumer]:
        """A consumer id or a group name as the consumers it stands for."""
        if name in self.members:
            return [self.members[name]]
        if name in self.groups:
            return [self.members[m] for m in self.groups[name]]
        raise KeyError(name)

    def known(self, name: str) -> bool:
        return name in self.members or name in self.groups

    def holders(self, department: str) -> list[Consumer]:
        """Who can hold a department's warnings: the city department first, then its county and street offices."""
        order = {"city": 0, "county": 1, "street": 2}
        found = [m for m in self.members.values() if m.acts_for == department and m.kind != "platform"]
        return sorted(found, key=lambda m: (order[m.level], m.id))

    def place(self, code: str | None) -> str:
        """A district's or street's name for people to read; the code itself when the table does not know it."""
        if not code:
            return ""
        return self.districts.get(code) or self.streets.get(code) or code


def load_consumers(directory: Path) -> Consumers:
    """contracts/consumers.yaml, refused whole with the file named when malformed."""
    path = directory / FILE
    try:
        doc = yaml.safe_load(path.read_text("utf-8"))
        districts, district_ids, streets, street_district = _divisions(doc["city"]["districts"])
        members = {
            cid: Consumer(
                id=cid,
                name=c["name"],
                kind=c["kind"],
                department=c.get("department"),
                districts=tuple(str(d) for d in c.get("districts", ())),
                streets=tuple(str(s) for s in c.get("streets", ())),
            )
            for cid, c in doc["consumers"].items()
        }
        groups = {g: tuple(m) for g, m in (doc.get("groups") or {}).items()}
        generated, generated_groups = _generated(
            doc.get("levels") or {}, districts, district_ids, streets, street_district
        )
    except FileNotFoundError:
        raise ContractError(f"{path}: missing; grants name consumers declared there") from None
    except (yaml.YAMLError, KeyError, TypeError, AttributeError, ValueError) as exc:
        raise ContractError(f"{path}: malformed consumers file ({type(exc).__name__}: {exc})") from None
    for cid in generated:
        if cid in members:
            raise ContractError(f"{path}: consumer {cid} is generated from the division table; remove its entry")
    members |= generated
    for g, ids in generated_groups.items():
        if g in groups:
            raise ContractError(f"{path}: group {g} is generated from the division table; remove it from groups")
        groups[g] = ids
    for g, ids in groups.items():
        unknown = [m for m in ids if m not in members]
        if unknown:
            raise ContractError(f"{path}: group {g} names unknown consumer {unknown[0]}")
    return Consumers(
        city=doc["city"]["name"],
        districts=districts,
        members=members,
        groups=groups,
        streets=streets,
        district_ids=district_ids,
    )


def _divisions(
    table: dict[Any, Any],
) -> tuple[dict[str, str], dict[str, str], dict[str, str], dict[str, str]]:
    """The division table: ``"430102": 芙蓉区`` or ``"430102": {name, id, streets: {code: name}}``."""
    districts, ids, streets, street_district = {}, {}, {}, {}
    for code, entry in table.items():
        code = str(code)
        if isinstance(entry, str):
            districts[code] = entry
            continue
        districts[code] = entry["name"]
        if entry.get("id"):
            ids[code] = str(entry["id"])
        for street, name in (entry.get("streets") or {}).items():
            street = str(street)
            if not street.startswith(code) or len(street) != 9 or not street.isdigit():
                raise ValueError(f"street {street} of district {code} is not a 9-digit code of that district")
            streets[street], street_district[street] = name, code
    return districts, ids, streets, street_district


def _generated(
    levels: dict[str, Any],
    districts: dict[str, str],
    ids: dict[str, str],
    streets: dict[str, str],
    street_district: dict[str, str],
) -> tuple[dict[str, Consumer], dict[str, tuple[str, ...]]]:
    unknown = set(levels) - {"county", "street"}
    if unknown:
        raise ValueError(f"levels has {', '.join(sorted(unknown))}; only county and street are generated")
    members: dict[str, Consumer] = {}
    groups: dict[str, tuple[str, ...]] = {}
    for department, bureau in (levels.get("county") or {}).items():
        made = [
            Consumer(f"{department}.{ids.get(code, code)}", f"{name}{bureau}", "county", department, (code,))
            for code, name in districts.items()
        ]
        members |= {c.id: c for c in made}
        groups[f"county_{department}"] = tuple(c.id for c in made)
    for department, office in (levels.get("street") or {}).items():
        made = [
            Consumer(f"{department}.{code}", f"{name}{office}", "street", department, (street_district[code],), (code,))
            for code, name in streets.items()
        ]
        members |= {c.id: c for c in made}
        groups[f"street_{department}"] = tuple(c.id for c in made)
    return members, groups
