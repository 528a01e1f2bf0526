"""Catalogue-wide checks that one contract alone cannot make: grants, code lists, the city's divisions."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from lidm.contracts import scope
from lidm.contracts.disclosure import REBUILD_THRESHOLD, rebuildable
from lidm.contracts.load import ContractCatalog
from lidm.contracts.model import Check, Classification, Contract, Grant, GrantLevel, Protection, RowScope

NEEDS = {
    GrantLevel.TOKEN: ({Protection.TOKEN}, "token"),
    GrantLevel.MASKED: ({Protection.MASK}, "mask"),
    GrantLevel.CLEAR: ({Protection.CLEAR, Protection.ENCRYPT}, "clear or encrypt"),
}


@dataclass(frozen=True)
class Finding:
    """One lint result, addressed so a contract author can find it."""

    severity: str  # error | warning
    contract: str
    where: str  # file:line or file
    field: str | None
    message: str

    def __str__(self) -> str:
        field = f" field {self.field}:" if self.field else ""
        return f"{self.severity}: {self.where}: {self.contract}:{field} {self.message}"


def _where(c: Contract, line: int | None = None) -> str:
    return f"{c.source_file}:{line}" if line else str(c.source_file)


def lint(catalog: ContractCatalog, city_prefix: str) -> list[Finding]:
    """Every finding over the whole catalogue; errors must be fixed before a contract is published."""
    out: list[Finding] = []
    for c in catalog:
        out += _lint_grants(c, catalog)
        out += _lint_fields(c, city_prefix)
    out += _lint_code_lists(catalog)
    out += _lint_consumers(catalog, city_prefix)
    out += _lint_disclosure(catalog)
    return out


def _lint_disclosure(catalog: ContractCatalog) -> list[Finding]:
    """A masked field that a consumer can rebuild from its other grants is an error: one per field and grant."""
    consumers: dict[tuple[str, str, str | None, int | None, str, tuple[str, ...], int], list[str]] = defaultdict(list)
    for r in rebuildable(catalog):
        key = (r.contract, r.field, r.source_file, r.line, r.format, r.revealed_by, r.candidates)
        consumers[key].append(r.consumer)
    out = []
    for (contract, field, source, line, fmt, by, n), who in consumers.items():
        where = f"{source}:{line}" if line else str(source)
        reveal = f"granted {', '.join(by)}, which reveal what the mask hides" if by else "nothing else granted"
        out.append(
            Finding(
                "error",
                contract,
                where,
                field,
                f"{', '.join(who)} can rebuild it from its mask {fmt}: {reveal}; {n} candidate(s) remain "
                f"(fewer than {REBUILD_THRESHOLD} counts as rebuilt). Grant it as a token, or stop granting "
                "the revealing fields to these consumers",
            )
        )
    return out


def _lint_grants(c: Contract, catalog: ContractCatalog) -> list[Finding]:
    out: list[Finding] = []

    def say(severity: str, line: int | None, field: str | None, message: str) -> None:
        out.append(Finding(severity, c.id, _where(c, line), field, message))

    if not c.grants:
        say("warning", None, None, "grants no consumer: nobody can read it")
    if not any(g.consumer == "platform" for g in c.grants) and c.department != "platform":
        say("warning", None, None, "no grant to the platform: it cannot monitor this feed")
    for g in c.grants:
        purpose = (g.purpose or "").strip()
        for name, level in g.fields.items():
            f = c.field(name)
            allowed, needed = NEEDS[level]
            if not (allowed & set(f.protection)):
                say("error", g.line, name, f"grant to {g.consumer} at {level.value} needs {needed} in lidmProtection")
            direct = f.classification is Classification.DIRECT_IDENTIFIER
            if level is GrantLevel.CLEAR and direct and not purpose:
                say("error", g.line, name, f"direct identifier in clear to {g.consumer} without a declared purpose")
        if not purpose:
            say("warning", g.line, None, f"grant to {g.consumer} declares no purpose")
            for name in g.linkable:
                say("error", g.line, name, f"linkable for {g.consumer} without a declared purpose to join it for")
        members = catalog.consumers.expand(g.consumer) if catalog.consumers else []
        counties = [m.id for m in members if m.kind == "county"]
        streets = [m.id for m in members if m.kind == "street"]
        if counties and "district" not in scope.needs(g.rows):
            say(
                "error",
                g.line,
                None,
                f"grant to {g.consumer} gives county bureau(s) {', '.join(counties)} every district's rows: "
                "a county reads only its own districts; set rows: own_districts or own_department_districts "
                "(with lidmDistrictField)",
            )
        if streets and g.rows is not RowScope.OWN_STREETS:
            say(
                "error",
                g.line,
                None,
                f"grant to {g.consumer} gives street office(s) {', '.join(streets[:3])}… more than their streets' "
                "rows: set rows: own_streets (with lidmStreetField)",
            )
        prop = scope.missing_property(c, g.rows)
        if prop is not None:
            say("error", g.line, None, f"grant to {g.consumer} is limited to {g.rows.value} but {prop} is unset")
        for what in scope.needs(g.rows):
            attr = {"district": "districts", "street": "streets", "department": "acts_for"}[what]
            if any(not getattr(m, attr) for m in members):
                say("error", g.line, None, f"grant to {g.consumer} is limited to {g.rows.value} but a member has none")
    out += _lint_overlaps(c, catalog)
    return out


def _lint_overlaps(c: Contract, catalog: ContractCatalog) -> list[Finding]:
    """A consumer reached by several grants on one dataset reads by one: its own grant wins over a group's, and
    differing group grants with none of its own cannot be applied. Say which, where the reader would not guess."""
    if catalog.consumers is None:
        return []
    reaching: dict[str, list[Grant]] = defaultdict(list)
    for g in c.grants:
        for m in catalog.consumers.expand(g.consumer):
            reaching[m.id].append(g)
    out = []
    for member, grants in reaching.items():
        if len(grants) < 2:
            continue
        own = [g for g in grants if g.consumer == member]
        others = [g for g in grants if g.consumer != member]
        if own:
            for g in others:
                if (g.fields, g.rows, g.linkable) != (own[0].fields, own[0].rows, own[0].linkable):
                    out.append(
                        Finding(
                            "warning",
                            c.id,
                            _where(c, own[0].line),
                            None,
                            f"{member} has a grant of its own, which applies instead of the differing grant to "
                            f"{g.consumer} (line {g.line}); {member} reads only what its own grant gives",
                        )
                    )
        elif any((g.fields, g.rows) != (others[0].fields, others[0].rows) for g in others):
            out.append(
                Finding(
                    "error",
                    c.id,
                    _where(c, others[0].line),
                    None,
                    f"{member} is reached by differing grants to {', '.join(g.consumer for g in others)} and has "
                    "none of its own: give it one grant of its own, or make the group grants agree",
                )
            )
    return out


def _lint_fields(c: Contract, city_prefix: str) -> list[Finding]:
    out = []
    for f in c.fields:
        if f.classification is Classification.DIRECT_IDENTIFIER and Protection.CLEAR in f.protection:
            out.append(Finding("error", c.id, _where(c), f.name, "a direct identifier is stored in clear"))
        if Check.DIVISION_CODE in f.checks and f.enum:
            for code in f.enum:
                if not code.startswith(city_prefix):
                    out.append(
                        Finding(
                            "error", c.id, _where(c), f.name, f"division code {code} is not in the city ({city_prefix})"
                        )
                    )
        if f.enum is not None and f.code_list is None:
            out.append(
                Finding(
                    "warning",
                    c.id,
                    _where(c),
                    f.name,
                    "enum without lidmCodeList: its codes cannot be checked against other contracts",
                )
            )
    return out


def _lint_code_lists(catalog: ContractCatalog) -> list[Finding]:
    """The same code list means the same thing everywhere: a code never changes its label between contracts, and
    a contract that reuses a shared list uses its codes, never more (disability grades 1-4 are not 1-10): a list
    of its own gets a name of its own."""
    labels: dict[str, dict[str, tuple[str, str]]] = defaultdict(dict)  # list -> code -> (label, where)
    uses: dict[str, list[tuple[Contract, str, frozenset[str]]]] = defaultdict(list)
    out = []
    for c in catalog:
        for f in c.fields:
            if not f.code_list or not f.enum:
                continue
            uses[f.code_list].append((c, f.name, frozenset(f.enum)))
            for code, label in zip(f.enum, f.enum_labels or (None,) * len(f.enum), strict=True):
                seen = labels[f.code_list].get(code)
                if seen is None:
                    labels[f.code_list][code] = (label or "", f"{c.id}.{f.name}")
                elif (label or "") != seen[0]:
                    out.append(
                        Finding(
                            "error",
                            c.id,
                            _where(c),
                            f.name,
                            f"code {code} of list {f.code_list} is labelled '{label}' here but "
                            f"'{seen[0]}' in {seen[1]}",
                        )
                    )
    for name, used in uses.items():
        if len(used) < 2:
            continue
        for c, field, codes in used:
            others = [(o, of, oc) for o, of, oc in used if (o.id, of) != (c.id, field)]
            known = frozenset().union(*(oc for _, _, oc in others))
            extra = sorted(codes - known)
            if extra:
                where = ", ".join(f"{o.id}.{of}" for o, of, _ in others)
                out.append(
                    Finding(
                        "error",
                        c.id,
                        _where(c),
                        field,
                        f"list {name} has no code {', '.join(extra)} elsewhere ({where}): a contract that needs other "
                        "codes declares a list of its own (another lidmCodeList name)",
                    )
                )
    return out


def _lint_consumers(catalog: ContractCatalog, city_prefix: str) -> list[Finding]:
    def error(message: str) -> Finding:
        return Finding("error", "-", "contracts/consumers.yaml", None, message)

    if catalog.consumers is None:
        return [error("no consumers file: grants cannot be checked")]
    out = [
        error(f"district {code} is not a division of the city ({city_prefix})")
        for code in catalog.consumers.districts
        if not code.startswith(city_prefix) or len(code) != 6
    ]
    out += [
        error(f"consumer {m.id} names district {code}, not one of the city's")
        for m in catalog.consumers.members.values()
        for code in m.districts
        if code not in catalog.consumers.districts
    ]
    return out
