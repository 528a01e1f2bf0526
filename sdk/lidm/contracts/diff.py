"""Classify every change between two versions of a contract, and gate versions on it.

Breaking changes need a major version bump: a consumer's query or a department's adapter may stop
working, or personal data becomes more exposed. Compatible ones need at least a minor or patch bump.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from lidm.contracts.model import Classification, Contract, Field, GrantLevel, LogicalType, Protection, RowScope

# A field type may widen (integer -> number) but never narrow.
_WIDER = {(LogicalType.INTEGER, LogicalType.NUMBER), (LogicalType.DATE, LogicalType.TIMESTAMP)}
_EXPOSURE = {Protection.DROP: 0, Protection.TOKEN: 1, Protection.MASK: 2, Protection.ENCRYPT: 3, Protection.CLEAR: 4}
_CLASS_RANK = {
    Classification.PLAIN: 0,
    Classification.QUASI_IDENTIFIER: 1,
    Classification.SENSITIVE: 2,
    Classification.DIRECT_IDENTIFIER: 3,
}
_LEVEL_RANK = {GrantLevel.TOKEN: 1, GrantLevel.MASKED: 2, GrantLevel.CLEAR: 3}


@dataclass(frozen=True)
class Change:
    kind: str  # a stable code, e.g. field_removed, enum_value_added
    breaking: bool
    field: str | None
    detail: str
    consumers: tuple[str, ...] = ()

    def __str__(self) -> str:
        tag = "BREAKING" if self.breaking else "compatible"
        where = f" {self.field}:" if self.field else ""
        hits = f" (consumers: {', '.join(self.consumers)})" if self.consumers else ""
        return f"{tag} {self.kind}{where} {self.detail}{hits}"


@dataclass
class ContractDiff:
    old: Contract
    new: Contract
    changes: list[Change] = field(default_factory=list)

    @property
    def breaking(self) -> bool:
        return any(c.breaking for c in self.changes)

    def version_problem(self) -> str | None:
        """Why the new version number does not fit the changes, or None when it does."""
        old, new = _semver(self.old.version), _semver(self.new.version)
        if not self.changes:
            return None
        if self.breaking and new[0] <= old[0]:
            return f"breaking changes need a major version bump ({self.old.version} -> {old[0] + 1}.0.0)"
        if new <= old:
            return f"changes need a version bump (still {self.new.version})"
        return None


def _semver(v: str) -> tuple[int, int, int]:
    parts = [*v.split("-")[0].split("."), "0", "0"][:3]
    return int(parts[0]), int(parts[1]), int(parts[2])


def _readers(c: Contract, name: str) -> tuple[str, ...]:
    return tuple(sorted({g.consumer for g in c.grants if name in g.fields}))


def diff(old: Contract, new: Contract) -> ContractDiff:
    """Every change from old to new, each classified and naming the consumers it reaches."""
    d = ContractDiff(old, new)
    add = d.changes.append
    old_f, new_f = {f.name: f for f in old.fields}, {f.name: f for f in new.fields}
    removed, added = sorted(old_f.keys() - new_f.keys()), sorted(new_f.keys() - old_f.keys())
    renamed = {r: a for r in removed for a in added if _same_shape(old_f[r], new_f[a])}
    for r in removed:
        if r in renamed:
            add(Change("field_renamed", True, r, f"renamed to {renamed[r]}", _readers(old, r)))
        else:
            add(Change("field_removed", True, r, "removed", _readers(old, r)))
    for a in added:
        if a in renamed.values():
            continue
        f = new_f[a]
        add(
            Change(
                "field_added_required" if f.required else "field_added_optional",
                f.required,
                a,
                "added as required: every adapter must now provide it" if f.required else "added as optional",
            )
        )
    for name in sorted(old_f.keys() & new_f.keys()):
        _field_changes(old_f[name], new_f[name], _readers(old, name), add)
    if old.key != new.key:
        add(
            Change(
                "key_changed",
                True,
                None,
                f"key {', '.join(old.key)} -> {', '.join(new.key)}",
                tuple(sorted({g.consumer for g in old.grants})),
            )
        )
    if old.update_mode != new.update_mode or old.watermark != new.watermark:
        add(
            Change(
                "update_mode_changed",
                True,
                None,
                f"{old.update_mode.value}/{old.watermark} -> {new.update_mode.value}/{new.watermark}",
            )
        )
    for attr in ("description", "title", "frequency", "freshness"):
        if getattr(old, attr) != getattr(new, attr):
            add(Change(f"{attr}_changed", False, None, f"{attr} changed"))
    _grant_changes(old, new, add)
    return d


def _same_shape(a: Field, b: Field) -> bool:
    return (a.type, a.protection, a.classification, a.business_name) == (
        b.type,
        b.protection,
        b.classification,
        b.business_name,
    )


def _field_changes(o: Field, n: Field, readers: tuple[str, ...], add) -> None:  # type: ignore[no-untyped-def]
    if o.type != n.type:
        widened = (o.type, n.type) in _WIDER
        add(
            Change(
                "type_widened" if widened else "type_narrowed",
                not widened,
                o.name,
                f"{o.type.value} -> {n.type.value}",
                readers,
            )
        )
    if not o.required and n.required:
        add(Change("made_required", True, o.name, "optional -> required", readers))
    if o.required and not n.required:
        add(Change("made_optional", True, o.name, "required -> optional: consumers may now see nulls", readers))
    if o.enum is not None or n.enum is not None:
        before, after = set(o.enum or ()), set(n.enum or ())
        for v in sorted(before - after):
            add(Change("enum_value_removed", True, o.name, f"code {v} removed", readers))
        for v in sorted(after - before):
            add(Change("enum_value_added", False, o.name, f"code {v} added", readers))
    if (o.max_length is not None and (n.max_length or 10**9) < o.max_length) or (
        o.max_length is None and n.max_length is not None
    ):
        add(Change("length_narrowed", True, o.name, f"max length {o.max_length} -> {n.max_length}", readers))
    if n.minimum is not None and (o.minimum is None or n.minimum > o.minimum):
        add(Change("range_narrowed", True, o.name, f"minimum {o.minimum} -> {n.minimum}", readers))
    if n.maximum is not None and (o.maximum is None or n.maximum < o.maximum):
        add(Change("range_narrowed", True, o.name, f"maximum {o.maximum} -> {n.maximum}", readers))
    if n.pattern != o.pattern and n.pattern is not None:
        add(Change("pattern_changed", True, o.name, "pattern changed: values valid before may be refused", readers))
    if set(o.protection) != set(n.protection):
        exposure = lambda p: max(_EXPOSURE[x] for x in p)  # noqa: E731
        weakened = exposure(n.protection) > exposure(o.protection)
        kind = "protection_weakened" if weakened else "protection_changed"
        add(
            Change(
                kind,
                True,
                o.name,
                f"{'/'.join(p.value for p in o.protection)} -> {'/'.join(p.value for p in n.protection)}",
                readers,
            )
        )
    if _CLASS_RANK[n.classification] < _CLASS_RANK[o.classification]:
        add(
            Change(
                "classification_lowered", True, o.name, f"{o.classification.value} -> {n.classification.value}", readers
            )
        )
    elif n.classification != o.classification:
        add(Change("classification_raised", False, o.name, f"{o.classification.value} -> {n.classification.value}"))
    if (o.description, o.business_name) != (n.description, n.business_name):
        add(Change("field_description_changed", False, o.name, "description changed"))


def _grant_changes(old: Contract, new: Contract, add) -> None:  # type: ignore[no-untyped-def]
    og, ng = {g.consumer: g for g in old.grants}, {g.consumer: g for g in new.grants}
    for consumer in sorted(og.keys() - ng.keys()):
        add(Change("grant_revoked", True, None, f"grant to {consumer} removed", (consumer,)))
    for consumer in sorted(ng.keys() - og.keys()):
        add(
            Change(
                "grant_widened", True, None, f"new grant to {consumer} ({len(ng[consumer].fields)} fields)", (consumer,)
            )
        )
    for consumer in sorted(og.keys() & ng.keys()):
        o, n = og[consumer], ng[consumer]
        for name in sorted(n.fields):
            if name not in o.fields:
                add(
                    Change(
                        "grant_widened", True, name, f"{consumer} may now read it ({n.fields[name].value})", (consumer,)
                    )
                )
            elif _LEVEL_RANK[n.fields[name]] > _LEVEL_RANK[o.fields[name]]:
                add(
                    Change(
                        "grant_widened",
                        True,
                        name,
                        f"{consumer}: {o.fields[name].value} -> {n.fields[name].value}",
                        (consumer,),
                    )
                )
            elif _LEVEL_RANK[n.fields[name]] < _LEVEL_RANK[o.fields[name]]:
                add(
                    Change(
                        "grant_narrowed",
                        True,
                        name,
                        f"{consumer}: {o.fields[name].value} -> {n.fields[name].value}",
                        (consumer,),
                    )
                )
        for name in sorted(set(o.fields) - set(n.fields)):
            add(Change("grant_narrowed", True, name, f"{consumer} may no longer read it", (consumer,)))
        if o.rows != n.rows:
            widened = n.rows is RowScope.ALL
            add(
                Change(
                    "grant_widened" if widened else "grant_narrowed",
                    True,
                    None,
                    f"{consumer}: rows {o.rows.value} -> {n.rows.value}",
                    (consumer,),
                )
            )
        for name in sorted(set(n.linkable) - set(o.linkable)):
            add(Change("grant_widened", True, name, f"{consumer} may now join it across datasets", (consumer,)))
        for name in sorted(set(o.linkable) - set(n.linkable)):
            add(Change("grant_narrowed", True, name, f"{consumer} may no longer join it across datasets", (consumer,)))
        if (o.purpose or "") != (n.purpose or ""):
            add(Change("grant_purpose_changed", False, None, f"{consumer}: purpose changed", (consumer,)))
