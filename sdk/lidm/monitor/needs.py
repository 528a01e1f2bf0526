"""The needs list (需求清单): one row per household and kind of need, from open warnings and home visits; and its
summary per street and kind, small counts withheld, which a charity reads (三(六) "救助需求与慈善供给的匹配对接").

`build_needs` materialises ``platform_needs`` and ``platform_needs_summary`` in one transaction, set-based: one
SELECT of every need now (a UNION of the open warnings and of each service code of the visits), then per table an
UPDATE of the rows whose values changed, an INSERT of the new ones and a retirement of those no longer found. Row keys
derive from what the row is (kind and household; district, street and kind), so a rebuild finds its own rows again:
nothing changed means nothing written. Which need a warning's hardship type or a visit's service code stands for is
data, ``rules/needs/kinds.yaml``, with the disclosure threshold of the summary.

Decisions the issue leaves open, taken here once:

- The household is the assistance household: the warning's or visit's own household token, else the roster's for
  the person; a person in none counts as a household of one (the need keyed on the person's token).
- A visit's needs are those of the person's latest visit (the feed keeps one row per person); a warning's while it is
  open (raised, pushed, acknowledged, overdue). A need no longer found is retired (``_retired_batch``), never deleted;
  found again, it is live again. Consumers' views show live rows only.
- The summary counts households per district, street and kind over the live needs; a count under ``suppress_below``
  is kept for the platform (``households``) and withheld from everyone else (``households_shown`` empty,
  ``suppressed`` true). No total row is published, so a withheld cell cannot be had by subtraction.
"""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from lidm.central.schema import bytes_min, dataset_table, token_hex
from lidm.errors import RuleError
from lidm.monitor.lifecycle import OPEN, WARNING_CONTRACT
from lidm.monitor.rules import default_rules_dir
from lidm.yamlfile import read_mapping

NEEDS = "platform.needs"
SUMMARY = "platform.needs_summary"
VISITS = "civil_affairs.home_visit"
ROSTER = "civil_affairs.low_income_roster"
BUILD_LOCK = 0x6C69646D_6E656564  # "lidmneed": the PostgreSQL advisory lock one build holds
TOKEN_CHARS = 24  # of a household's (person's) token in a need's key: 96 bits, no collision in a city


class NeedKinds(BaseModel):
    """rules/needs/kinds.yaml: which need each hardship type and each visit's service code stands for."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    from_warnings: dict[str, str]
    from_visits: dict[str, str] = Field(default_factory=dict)
    suppress_below: int = Field(ge=1, le=100)


def needs_file(rules_dir: Path | None = None) -> Path:
    """rules/needs/kinds.yaml, beside the monitoring rules (LIDM_RULES_DIR)."""
    return (rules_dir or default_rules_dir()) / "needs" / "kinds.yaml"


def load_kinds(path: Path | None = None, catalog: Any = None) -> NeedKinds:
    """The needs' mapping; refused naming the file and the key, and with a catalogue any code it does not know."""
    path = path or needs_file()
    try:
        kinds = NeedKinds.model_validate(read_mapping(path, "needs mapping", RuleError))
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise RuleError(f"{path}: {problems}") from None
    if catalog is not None:
        allowed = set(catalog[NEEDS].field("need_kind").enum or ())
        hardship = set(catalog[WARNING_CONTRACT].field("hardship_type").enum or ())
        _known(path, "from_warnings", kinds.from_warnings, hardship, allowed)
        if VISITS in catalog:
            pattern = catalog[VISITS].field("needs").pattern or ".*"
            wanted = {code for code in kinds.from_visits if re.fullmatch(pattern, code)}
            _known(path, "from_visits", kinds.from_visits, wanted, allowed)
    return kinds


def _known(path: Path, key: str, mapping: dict[str, str], codes: set[str], kinds: set[str]) -> None:
    if bad := sorted(set(mapping) - codes):
        raise RuleError(f"{path}: {key}: {', '.join(bad)} not a code it maps from")
    if bad := sorted(set(mapping.values()) - kinds):
        raise RuleError(f"{path}: {key}: {', '.join(bad)} not among {NEEDS} need_kind {', '.join(sorted(kinds))}")


class _Tables:
    def __init__(self, catalog: Any) -> None:
        self.catalog, self.md = catalog, sa.MetaData()

    def __call__(self, contract_id: str) -> sa.Table:
        contract = self.catalog[contract_id]
        table = self.md.tables.get(contract.table)
        return table if table is not None else dataset_table(contract, self.md)


def _household(t: _Tables, row: sa.FromClause) -> sa.ColumnElement[Any]:
    """The row's household token, else the roster's household of its person (a live row), else null."""
    own = row.c.household_id_token
    if ROSTER not in t.catalog:
        return own
    r = t(ROSTER).alias(f"r_{row.name}")
    roster = sa.select(bytes_min(r.c.household_id_token)).where(
        r.c.id_number_token == row.c.id_number_token, r.c._retired_batch.is_(None)
    )
    return sa.func.coalesce(own, roster.scalar_subquery())


def _found(t: _Tables, kinds: NeedKinds) -> sa.Subquery:
    """Every need found now, one row per warning or visit code: person, household, kind, place, which source."""
    w = t(WARNING_CONTRACT).alias("w")
    kind = sa.case(*((w.c.hardship_type == h, sa.literal(k, sa.String)) for h, k in kinds.from_warnings.items()))
    parts = [
        sa.select(
            w.c.id_number_token.label("person"),
            w.c.id_number_masked.label("masked"),
            _household(t, w).label("household"),
            kind.label("need_kind"),
            w.c.district_code,
            w.c.street_code,
            sa.literal(1, sa.Integer).label("warning"),
        ).where(
            w.c._retired_batch.is_(None),
            w.c.status.in_(OPEN),
            w.c.hardship_type.in_(list(kinds.from_warnings)),
            w.c.id_number_token.is_not(None),
        )
    ]
    if VISITS in t.catalog:
        v = t(VISITS).alias("v")
        cell = sa.literal(",") + sa.func.coalesce(v.c.needs, "") + sa.literal(",")
        for code, need in kinds.from_visits.items():
            parts.append(
                sa.select(
                    v.c.id_number_token.label("person"),
                    v.c.id_number_masked.label("masked"),
                    _household(t, v).label("household"),
                    sa.literal(need, sa.String).label("need_kind"),
                    v.c.district_code,
                    v.c.street_code,
                    sa.literal(0, sa.Integer).label("warning"),
                ).where(v.c._retired_batch.is_(None), cell.contains(f",{code},", autoescape=True))
            )
    return sa.union_all(*parts).subquery("found")


def _needs(found: sa.Subquery) -> sa.Select[Any]:
    """One row per household and kind: the person with the smallest token stands for it (deterministic)."""
    f = found.c
    key = sa.case(
        (f.household.is_not(None), sa.literal("H") + sa.func.substr(token_hex(f.household), 1, TOKEN_CHARS)),
        else_=sa.literal("P") + sa.func.substr(token_hex(f.person), 1, TOKEN_CHARS),
    )
    keyed = sa.select(found, (f.need_kind + sa.literal(":") + key).label("need_id")).subquery("keyed")
    k = keyed.c
    grouped = (
        sa.select(
            k.need_id,
            bytes_min(k.household).label("household_id_token"),
            bytes_min(k.person).label("id_number_token"),
            sa.func.min(k.need_kind).label("need_kind"),
            sa.func.sum(k.warning).label("open_warnings"),
            sa.func.count().label("found"),
            sa.func.min(k.district_code).label("district_code"),
            sa.func.min(k.street_code).label("street_code"),
        )
        .group_by(k.need_id)
        .subquery("grouped")
    )
    g = grouped.c
    masked = (
        sa.select(sa.func.min(k.masked)).where(k.need_id == g.need_id, k.person == g.id_number_token).scalar_subquery()
    )
    source = sa.case(
        (g.open_warnings == g.found, sa.literal("warning")),
        (g.open_warnings == 0, sa.literal("visit")),
        else_=sa.literal("both"),
    )
    return sa.select(
        g.need_id,
        g.household_id_token,
        g.id_number_token,
        masked.label("id_number_masked"),
        g.need_kind,
        source.label("source"),
        g.open_warnings,
        g.district_code,
        g.street_code,
        g.need_id.label("_row_digest"),  # a platform-built row: its key stands for it (nothing is loaded into it)
    )


def _summary(needs: sa.Table, catalog: Any, threshold: int) -> sa.Select[Any]:
    """Live needs counted per district, street and kind; a count under ``threshold`` withheld from others."""
    n = needs
    count = sa.func.count()
    districts = catalog.consumers.districts if catalog.consumers else {}
    name = sa.case(*((n.c.district_code == code, sa.literal(label)) for code, label in districts.items()))
    summary_id = n.c.district_code + ":" + sa.func.coalesce(n.c.street_code, "") + ":" + n.c.need_kind
    return (
        sa.select(
            summary_id.label("summary_id"),
            sa.func.min(n.c.district_code).label("district_code"),
            sa.func.min(name if districts else sa.null()).label("district_name"),
            sa.func.min(n.c.street_code).label("street_code"),
            sa.func.min(n.c.need_kind).label("need_kind"),
            count.label("households"),
            sa.case((count >= threshold, count), else_=sa.null()).label("households_shown"),
            sa.case((count < threshold, sa.true()), else_=sa.false()).label("suppressed"),
            summary_id.label("_row_digest"),
        )
        .where(n.c._retired_batch.is_(None))
        .group_by(n.c.district_code, n.c.street_code, n.c.need_kind)
    )


def _sync(conn: sa.Connection, t: sa.Table, select: sa.Select[Any], key: str, **stamp: Any) -> dict[str, int]:
    """Bring ``t`` to what ``select`` finds: changed rows updated, new ones inserted, missing ones retired."""
    src = select.subquery("src")
    cols = [c.name for c in src.columns]
    changed = sa.or_(*(t.c[c].is_distinct_from(src.c[c]) for c in cols if c != key), t.c._retired_batch.is_not(None))
    values = {c: src.c[c] for c in cols if c != key} | stamp | {"_retired_batch": None}
    updated = conn.execute(sa.update(t).where(t.c[key] == src.c[key], changed).values(values)).rowcount
    new = sa.select(*(src.c[c] for c in cols), *(sa.literal(v) for v in stamp.values())).where(
        ~sa.exists().where(t.c[key] == src.c[key])
    )
    insert = sa.insert(t).from_select([*cols, *stamp], new).execution_options(preserve_rowcount=True)
    inserted = conn.execute(insert).rowcount
    gone = sa.select(src.c[key])
    retired = conn.execute(
        sa.update(t)
        .where(t.c._retired_batch.is_(None), t.c[key].not_in(gone))
        .values(_retired_batch=stamp["_batch_id"], updated_at=stamp["updated_at"])
    ).rowcount
    live = conn.execute(sa.select(sa.func.count()).select_from(t).where(t.c._retired_batch.is_(None))).scalar_one()
    return {"inserted": inserted, "updated": updated, "retired": retired, "live": live}


def build_needs(engine: sa.Engine, catalog: Any, *, now: datetime, path: Path | None = None) -> dict[str, int]:
    """Bring the needs list and its summary up to date with the open warnings and the visits, in one transaction.

    Returns counts only: per table what was inserted, updated and retired and how many rows are live, and how many
    summary cells are withheld. A rebuild with nothing changed writes nothing."""
    kinds = load_kinds(path, catalog)
    t = _Tables(catalog)
    needs, summary = t(NEEDS), t(SUMMARY)
    stamp = {"updated_at": now, "_batch_id": str(uuid.uuid4())}
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":  # the monitor and feedback DAGs may both rebuild: one waits
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": BUILD_LOCK})
        listed = _sync(conn, needs, _needs(_found(t, kinds)), "need_id", **stamp)
        counted = _sync(conn, summary, _summary(needs, catalog, kinds.suppress_below), "summary_id", **stamp)
        withheld = conn.execute(
            sa.select(sa.func.count()).where(summary.c._retired_batch.is_(None), summary.c.suppressed.is_(True))
        ).scalar_one()
    return {
        **{f"needs_{k}": v for k, v in listed.items()},
        **{f"summary_{k}": v for k, v in counted.items()},
        "summary_withheld": withheld,
    }


def needs(settings: Any, *, now: datetime | None = None) -> dict[str, int]:
    """One build with the deployment's settings: its catalogue, rules folder and central database."""
    from lidm.central import db
    from lidm.contracts.load import load_catalog
    from lidm.monitor.lifecycle import city_now

    catalog = load_catalog(settings.contracts_dir)
    engine = db.connect(settings)
    try:
        db.ensure_current(engine, settings)
        return build_needs(engine, catalog, now=now or city_now(settings.timezone), path=needs_file(settings.rules_dir))
    finally:
        engine.dispose()
