"""The breaking-change classifier on every kind of change, and the version gate built on it."""

from __future__ import annotations

import pytest

from lidm.contracts import load_catalog
from lidm.contracts.diff import diff
from lidm.contracts.model import Classification, Contract, GrantLevel, LogicalType, Protection, RowScope, UpdateMode


@pytest.fixture(scope="module")
def roster() -> Contract:
    return load_catalog()["civil_affairs.low_income_roster"]


def _with_field(c: Contract, name: str, **update) -> Contract:
    return c.model_copy(
        update={"fields": tuple(f.model_copy(update=update) if f.name == name else f for f in c.fields)}
    )


def _grant(c: Contract, consumer: str, **update) -> Contract:
    grants = tuple(g.model_copy(update=update) if g.consumer == consumer else g for g in c.grants)
    return c.model_copy(update={"grants": grants})


def _kinds(old: Contract, new: Contract) -> dict[str, bool]:
    return {ch.kind: ch.breaking for ch in diff(old, new).changes}


def _fields(c: Contract, *fields):
    return c.model_copy(update={"fields": tuple(fields)})


CASES = {
    "field_removed": lambda c: _fields(c, *(f for f in c.fields if f.name != "phone")),
    "field_renamed": lambda c: _fields(
        c, *(f.model_copy(update={"name": "mobile"}) if f.name == "phone" else f for f in c.fields)
    ),
    "field_added_optional": lambda c: _fields(
        c, *c.fields, c.field("phone").model_copy(update={"name": "phone2", "business_name": "备用电话"})
    ),
    "field_added_required": lambda c: _fields(
        c, *c.fields, c.field("status").model_copy(update={"name": "reason", "business_name": "原因", "enum": None})
    ),
    "type_narrowed": lambda c: _with_field(c, "monthly_amount", type=LogicalType.INTEGER),
    "type_widened": lambda c: _with_field(c, "approval_date", type=LogicalType.TIMESTAMP),
    "made_required": lambda c: _with_field(c, "termination_date", required=True),
    "made_optional": lambda c: _with_field(c, "street_code", required=False),
    "enum_value_removed": lambda c: _with_field(c, "category", enum=("dibao", "tekun")),
    "enum_value_added": lambda c: _with_field(
        c, "status", enum=("active", "suspended", "gradual_exit", "terminated", "pending")
    ),
    "range_narrowed": lambda c: _with_field(c, "monthly_amount", maximum=5000),
    "length_narrowed": lambda c: _with_field(c, "name", max_length=20),
    "key_changed": lambda c: c.model_copy(update={"key": ("household_id",)}),
    "protection_weakened": lambda c: _with_field(c, "household_id", protection=(Protection.CLEAR,)),
    "protection_changed": lambda c: _with_field(c, "phone", protection=(Protection.ENCRYPT,)),
    "classification_lowered": lambda c: _with_field(c, "category", classification=Classification.PLAIN),
    "grant_widened": lambda c: _grant(
        c, "education", fields={**dict(_g(c, "education").fields), "name": GrantLevel.MASKED}
    ),
    "grant_narrowed": lambda c: _grant(c, "justice", fields={"id_number": GrantLevel.TOKEN}),
    "grant_revoked": lambda c: c.model_copy(update={"grants": tuple(g for g in c.grants if g.consumer != "justice")}),
    "update_mode_changed": lambda c: c.model_copy(
        update={"update_mode": UpdateMode.INCREMENTAL, "watermark": "updated_at"}
    ),
    "description_changed": lambda c: c.model_copy(update={"description": c.description + " 另注。"}),
    "field_description_changed": lambda c: _with_field(c, "name", description="姓名（户籍登记）"),
    "grant_purpose_changed": lambda c: _grant(c, "justice", purpose="法律援助 / legal aid"),
}
BREAKING = {
    "field_removed",
    "field_renamed",
    "field_added_required",
    "type_narrowed",
    "made_required",
    "made_optional",
    "enum_value_removed",
    "range_narrowed",
    "length_narrowed",
    "key_changed",
    "protection_weakened",
    "protection_changed",
    "classification_lowered",
    "grant_widened",
    "grant_narrowed",
    "grant_revoked",
    "update_mode_changed",
}


def _g(c: Contract, consumer: str):
    return next(g for g in c.grants if g.consumer == consumer)


@pytest.mark.parametrize("kind", sorted(CASES))
def test_each_kind_of_change_is_classified(roster, kind):
    kinds = _kinds(roster, CASES[kind](roster))
    assert kind in kinds, kinds
    assert kinds[kind] is (kind in BREAKING)


def test_at_least_twelve_kinds_are_covered():
    assert len(CASES) >= 12 and len(BREAKING) >= 12


def test_changes_name_the_consumers_they_hit(roster):
    (change,) = [c for c in diff(roster, CASES["field_removed"](roster)).changes if c.kind == "field_removed"]
    assert set(change.consumers) == {"civil_affairs", "county_civil_affairs"}


def test_rows_scope_widening_is_breaking(roster):
    new = _grant(roster, "county_civil_affairs", rows=RowScope.ALL)
    assert _kinds(roster, new) == {"grant_widened": True}


def test_identical_contracts_have_no_changes(roster):
    assert diff(roster, roster).changes == []
    assert diff(roster, roster).version_problem() is None


@pytest.mark.parametrize(
    ("kind", "bump", "ok"),
    [
        ("field_removed", "minor", False),
        ("field_removed", "major", True),
        ("enum_value_added", "none", False),
        ("enum_value_added", "minor", True),
        ("description_changed", "patch", True),
    ],
)
def test_version_gate(roster, kind, bump, ok):
    major, minor, patch = (int(p) for p in roster.version.split("."))
    version = {
        "major": f"{major + 1}.0.0",
        "minor": f"{major}.{minor + 1}.0",
        "patch": f"{major}.{minor}.{patch + 1}",
        "none": roster.version,
    }[bump]
    new = CASES[kind](roster).model_copy(update={"version": version})
    assert (diff(roster, new).version_problem() is None) is ok
