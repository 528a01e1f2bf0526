"""比对数据质量（容错）: how often a sharing department's data, compared by a rule, turned out to be wrong.

The seed (四(三)) asks for a 容错纠错 mechanism: an officer who erred because the shared data was inaccurate
(数据共享不准确) is not blamed. So a department answers ``data_error`` (比对数据有误) rather than ``not_eligible``
when the warning came from wrong data, and here each data_error counts against the departments whose data the
rule compared: the feeds of its ``match`` and ``match_any`` clauses, and its subject unless the subject is the
low-income roster (the base every other feed is compared with; a rule whose subject is another department's feed
compares that feed). ``absent`` clauses are left out: a missing row is the acting department's own record.

The rate is data_error dispositions over the final dispositions (``monitor.dispositions.FINAL``; referrals and
一事一议 follow-ups are not answers yet) applied to warnings of the rules that read the department's data. One
GROUP BY rule in the database; rules are mapped to departments in Python (a handful of rules).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from lidm.central.schema import dataset_table, disposition_result
from lidm.monitor.dispositions import DISPOSITION_CONTRACT, FINAL
from lidm.monitor.lifecycle import warning_table
from lidm.monitor.quiet import DATA_ERROR
from lidm.monitor.rules import ROSTER_FEED, Rule


@dataclass(frozen=True)
class DataQuality:
    """One sharing department's record: answers to warnings its data raised, and how many said the data was wrong."""

    department: str
    dispositions: int
    data_errors: int
    rules: tuple[str, ...]

    @property
    def rate(self) -> float:
        """data_error over final dispositions, 0 when none were answered yet."""
        return round(self.data_errors / self.dispositions, 4) if self.dispositions else 0.0

    def as_row(self) -> dict[str, Any]:
        """The JSON form (lidm monitor quality --json)."""
        return {
            "department": self.department,
            "dispositions": self.dispositions,
            "data_errors": self.data_errors,
            "rate": self.rate,
            "rules": list(self.rules),
        }


def feed_department(catalog: Any, feed: str) -> str:
    """The department that shares a feed: its contract's, else the feed id's first part."""
    contract = catalog[feed] if catalog is not None and feed in catalog else None
    return getattr(contract, "department", None) or feed.split(".", 1)[0]


def sharing_departments(rule: Rule, catalog: Any) -> tuple[str, ...]:
    """The departments whose data the rule compared (see the module's docstring), in the rule's order."""
    feeds = [c.feed for c in (*rule.match, *rule.match_any)]
    if rule.subject.feed != ROSTER_FEED:
        feeds.insert(0, rule.subject.feed)
    return tuple(dict.fromkeys(feed_department(catalog, f) for f in feeds))


def sharing_map(rules: Sequence[Rule], catalog: Any) -> dict[str, tuple[str, ...]]:
    """Rule id -> its sharing departments, for ``data_quality`` and the report."""
    return {r.id: sharing_departments(r, catalog) for r in rules}


def answers_by_rule(conn: sa.Connection, catalog: Any) -> dict[str, tuple[int, int]]:
    """Per rule: (final dispositions applied, of which data_error)."""
    d = dataset_table(catalog[DISPOSITION_CONTRACT], sa.MetaData())
    w = warning_table(catalog)
    applied = sa.exists().where(
        disposition_result.c.disposition_id == d.c.disposition_id, disposition_result.c.status == "applied"
    )
    query = (
        sa.select(w.c.rule_id, sa.func.count(), sa.func.count().filter(d.c.outcome == DATA_ERROR))
        .select_from(d.join(w, w.c.warning_id == d.c.warning_id))
        .where(d.c._retired_batch.is_(None), d.c.outcome.in_(FINAL), applied)
        .group_by(w.c.rule_id)
    )
    return {rule: (n, errors) for rule, n, errors in conn.execute(query)}


def data_quality(conn: sa.Connection, catalog: Any, sharing: Mapping[str, Sequence[str]]) -> dict[str, DataQuality]:
    """Per sharing department, its answers and data errors; most data errors (then highest rate) first.

    ``sharing``: rule id -> departments (``sharing_map``). A rule that is no longer loaded counts for nobody.
    """
    totals: dict[str, list[int]] = {}
    rules: dict[str, list[str]] = {}
    for rule_id, (n, errors) in answers_by_rule(conn, catalog).items():
        for dept in sharing.get(rule_id, ()):
            t = totals.setdefault(dept, [0, 0])
            t[0] += n
            t[1] += errors
            rules.setdefault(dept, []).append(rule_id)
    out = {dept: DataQuality(dept, n, errors, tuple(sorted(rules[dept]))) for dept, (n, errors) in totals.items()}
    return dict(sorted(out.items(), key=lambda kv: (-kv[1].data_errors, -kv[1].rate, kv[0])))


def deployment_quality(settings: Any) -> dict[str, DataQuality]:
    """The data quality of a deployment's central database, with its rules (``lidm monitor quality``)."""
    from lidm.central import db
    from lidm.contracts.load import load_catalog
    from lidm.monitor.rules import load_rules

    catalog = load_catalog(settings.contracts_dir)
    rules = load_rules(settings.rules_dir, catalog=catalog, params=settings.rule_params)
    engine = db.connect_existing(settings)
    try:
        db.ensure_current(engine, settings)
        with engine.connect() as conn:
            return data_quality(conn, catalog, sharing_map(rules, catalog))
    finally:
        engine.dispose()
