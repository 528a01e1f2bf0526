"""The life of a warning: raised by a run, pushed, acknowledged, disposed, overdue, or closed with a reason.

Every change is one set-based statement per rule (or per batch of warnings) inside the caller's transaction,
and leaves an event: the warning table says where a warning is, the events say how it got there.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from lidm import workdays
from lidm.central import audit, release
from lidm.central.schema import dataset_table, monitor_run, warning_event, warning_state
from lidm.errors import LidmError
from lidm.monitor import quiet, raising, routing, scratch
from lidm.monitor.engine import Compiled, tune
from lidm.monitor.rules import Rule, due_dates
from lidm.monitor.totals import Totals

WARNING_CONTRACT = "platform.warning"
OPEN = ("raised", "pushed", "acknowledged", "overdue")
ANALYZE_AFTER = 1000  # warnings raised, closed or gone overdue in one run
# Which status a transition may start from; overdue stays overdue until the warning is disposed or closed.
_FROM = {
    "pushed": ("raised",),
    "acknowledged": ("raised", "pushed"),
    "disposed": OPEN,
    "overdue": ("raised", "pushed", "acknowledged"),
    "closed": OPEN,
}
_STAMP = {
    "pushed": "pushed_at",
    "acknowledged": "acknowledged_at",
    "disposed": "disposed_at",
    "overdue": "overdue_at",
    "closed": "closed_at",
}


class WarningError(LidmError):
    """A warning cannot make the change asked (unknown warning, wrong status)."""


def warning_table(catalog: Any) -> sa.Table:
    """platform_warning: the warning dataset the grants apply to."""
    return dataset_table(catalog[WARNING_CONTRACT], sa.MetaData())


def city_now(tz: str = "Asia/Shanghai") -> datetime:
    """Wall-clock time of the city, naive, the way the central database keeps timestamps."""
    return datetime.now(ZoneInfo(tz)).replace(tzinfo=None, microsecond=0)


def transition(
    conn: sa.Connection,
    catalog: Any,
    warning_ids: Sequence[str],
    status: str,
    *,
    actor: str,
    detail: str | None = None,
    at: datetime,
    extra: dict[str, Any] | None = None,
) -> list[str]:
    """Move warnings to ``status`` where their current status allows it; returns those that moved.

    Pushing or acknowledging an overdue warning records the time but leaves it overdue. ``extra`` sets more
    state columns (push_id, disposition_id, close_reason).
    """
    if status not in _FROM:
        raise WarningError(f"no transition to {status!r}; one of {', '.join(_FROM)}")
    w = warning_table(catalog)
    stamp_only = status in ("pushed", "acknowledged")
    moved: list[str] = []
    for chunk in _chunks(list(dict.fromkeys(warning_ids)), 500):
        allowed = (*_FROM[status], "overdue") if stamp_only else _FROM[status]
        stamp = warning_state.c[_STAMP[status]]
        unstamped = sa.select(warning_state.c.warning_id).where(warning_state.c.warning_id.in_(chunk), stamp.is_(None))
        rows = conn.execute(
            sa.select(w.c.warning_id, w.c.status).where(w.c.warning_id.in_(unstamped), w.c.status.in_(allowed))
        ).all()
        ids = [r.warning_id for r in rows]
        if not ids:
            continue
        fresh = [r.warning_id for r in rows if r.status != "overdue"] if stamp_only else ids
        if fresh:
            conn.execute(sa.update(w).where(w.c.warning_id.in_(fresh)).values(status=status, updated_at=at))
        if stamp_only and len(fresh) != len(ids):
            conn.execute(sa.update(w).where(w.c.warning_id.in_(ids)).values(updated_at=at))
        conn.execute(
            sa.update(warning_state)
            .where(warning_state.c.warning_id.in_(ids), stamp.is_(None))
            .values({stamp.name: at, **(extra or {})})
        )
        conn.execute(
            sa.insert(warning_event),
            [{"warning_id": i, "status": status, "at": at, "actor": actor, "detail": detail} for i in ids],
        )
        moved += ids
    return moved


@dataclass
class RuleCount:
    matched: int = 0
    raised: int = 0
    closed: int = 0
    open: int = 0
    suppressed: int = 0  # flagged again but held back: not eligible within the quiet period, or data_error; unchanged


@dataclass
class MonitorResult:
    run_id: str
    as_of: date
    counts: dict[str, RuleCount] = field(default_factory=dict)
    overdue: int = 0

    def as_dict(self) -> dict[str, Any]:
        """Counts only: safe for logs and XCom."""
        return {
            "run_id": self.run_id,
            "as_of": self.as_of.isoformat(),
            "overdue": self.overdue,
            "rules": {k: vars(v) for k, v in self.counts.items()},
        }


def run_monitor(
    engine: sa.Engine,
    rules: Sequence[Rule],
    catalog: Any,
    *,
    as_of: date,
    now: datetime | None = None,
    keyring: Any = None,
    levels: Sequence[str] = routing.ALL_LEVELS,
    calendar: workdays.Calendar = workdays.OFFICIAL,
) -> MonitorResult:
    """Evaluate every rule and bring the warnings up to date in one transaction: all of a run or none of it.

    The keyring keys the evidence digests a "not eligible" answer's quiet period compares (lidm.monitor.quiet);
    a keyless run keeps none and asks again whoever it cannot show unchanged. Every rule's due date is worked out
    first, on the official working-day calendar: one that does not reach that far stops the run before it starts.

    Each rule's SELECT runs once, into a temporary table of its matches; what is new, what went away and what is
    held back are read from there against the warning state's (rule, person) index, so a run that finds nothing
    new costs about what the rules' own queries cost and writes nothing to the warning tables."""
    now = now or city_now()
    dues = due_dates(rules, as_of, calendar)  # a ConfigError when the calendar runs out: nothing has started
    key = quiet.evidence_key(keyring)
    run_id = str(uuid.uuid4())
    result = MonitorResult(run_id, as_of)
    w = warning_table(catalog)
    with engine.begin() as conn:
        conn.execute(
            sa.insert(monitor_run).values(
                run_id=run_id,
                as_of=as_of,
                rules=json.dumps({r.id: r.version for r in rules}),
                started_at=now,
            )
        )
        tune(conn)
        d = raising.digests_table(conn, w) if key is not None else None
        sums = Totals(conn, w.c.id_number_token.type)  # each `total` clause's people, made once for the run
        compiled = [Compiled(rule, catalog, as_of, levels, sums) for rule in rules]
        sums.make()  # every rule's `total` clauses named their sums: each set of rows is summed once
        for index, (rule, c) in enumerate(zip(rules, compiled, strict=True)):
            result.counts[rule.id] = _run_rule(conn, w, c, run_id, index, now, dues[rule.id], key, d)
        open_now = sa.select(w.c.rule_id, sa.func.count()).where(w.c.status.in_(OPEN)).group_by(w.c.rule_id)
        for rule_id, n in conn.execute(open_now):
            if rule_id in result.counts:
                result.counts[rule_id].open = n
        overdue = (
            conn.execute(sa.select(w.c.warning_id).where(w.c.status.in_(_FROM["overdue"]), w.c.due_date < as_of))
            .scalars()
            .all()
        )
        result.overdue = len(
            transition(
                conn, catalog, overdue, "overdue", actor=f"monitor run {run_id}", detail="past its due date", at=now
            )
        )
        if d is not None:
            scratch.drop(conn, d)
        sums.drop()
        conn.execute(
            sa.update(monitor_run)
            .where(monitor_run.c.run_id == run_id)
            .values(counts=json.dumps(result.as_dict()["rules"]), finished_at=city_now())
        )
        totals = {
            k: sum(getattr(c, k) for c in result.counts.values()) for k in ("matched", "raised", "closed", "suppressed")
        }
        changed = totals["raised"] + totals["closed"] + result.overdue
        if changed > ANALYZE_AFTER and conn.dialect.name == "postgresql":
            # Fresh statistics for the next run's plans (and the pushes and reports in between): a new deployment's
            # warning tables were never analyzed, and autovacuum may be off or late.
            conn.execute(sa.text("ANALYZE lidm_warning_state, platform_warning, lidm_warning_event"))
        release.sync(conn, keyring)  # the warnings, and the happiness list's noted rows
        audit.append(
            conn,
            actor="monitor",
            action="monitor.run",
            subject=run_id,
            detail={"as_of": as_of.isoformat(), "rules": len(rules), "overdue": result.overdue}
            | totals
            | _assumed(calendar, dues),
            keyring=keyring,
        )
    return result


def _open_or_blocking(rule_id: str) -> sa.ColumnElement[bool]:
    """A warning that keeps the same (person, rule) from being raised again: open, or disposed while the
    condition still holds."""
    ws = warning_state
    return sa.and_(
        ws.c.rule_id == rule_id,
        ws.c.closed_at.is_(None),
        sa.or_(ws.c.disposed_at.is_(None), ws.c.condition_cleared_at.is_(None)),
    )


def _run_rule(
    conn: sa.Connection,
    w: sa.Table,
    compiled: Compiled,
    run_id: str,
    index: int,
    now: datetime,
    due: date,
    key: bytes | None = None,
    d: sa.Table | None = None,
) -> RuleCount:
    rule = compiled.rule
    count = RuleCount()
    # The rule's query, once: every later step reads its matches from the temporary table.
    m = raising.matches(conn, w, compiled)
    count.matched = scratch.count(conn, m)
    ws = warning_state
    blocked = sa.exists().where(_open_or_blocking(rule.id), ws.c.subject_token == m.c.subject_token)
    # Flagged again after a "not eligible" answer within the rule's quiet period: asked again only if the data
    # the rule reads changed (lidm.monitor.quiet); the others are held back and counted.
    answered = quiet.answered(compiled, compiled._catalog, m.c.subject_token)
    raise_now = ~blocked if answered is None else sa.and_(~blocked, ~answered)
    again: list[Any] = []
    known: dict[Any, str] = {}
    if answered is not None:
        candidates = conn.execute(sa.select(m.c.subject_token).where(~blocked, answered)).scalars().all()
        if candidates:
            again, known = quiet.hold_back(conn, compiled, compiled._catalog, candidates, key)
            count.suppressed = len(candidates) - len(again)
    # Counted first: a run with nothing new for the rule (the steady state) builds no INSERT (its routing CASE names
    # every office: a large statement to compile and plan for nothing).
    fresh = conn.execute(sa.select(sa.func.count()).select_from(m).where(raise_now)).scalar_one()
    digests = None  # each new warning keeps its evidence digest (with a keyring), worked out before it is raised
    if d is not None and key is not None and (fresh or again):
        people = sa.select(m.c.subject_token).where(raise_now)
        if raising.keep_digests(conn, d, quiet.to_raise(conn, compiled, people, key, {t: known[t] for t in again})):
            digests = d
    if fresh:
        new = raising.new_warnings(compiled, m, run_id, index, now, due, raise_now, 0, digests)
        count.raised = _inserted(conn, sa.insert(w).from_select(*new))
        raising.state_and_events(conn, compiled, m, run_id, index, now, raise_now, 0)
    for chunk in _chunks(sorted(again), 500):
        asked = m.c.subject_token.in_(chunk)
        new = raising.new_warnings(compiled, m, run_id, index, now, due, asked, count.raised, digests)
        added = _inserted(conn, sa.insert(w).from_select(*new))
        if added:
            raising.state_and_events(conn, compiled, m, run_id, index, now, asked, count.raised)
        count.raised += added
    if digests is not None:
        scratch.empty(conn, digests)  # the next rule's people may be this one's: their digests differ
    # Warnings whose condition went away: open ones close with the reason; disposed ones stop blocking.
    gone = conn.execute(
        sa.select(ws.c.warning_id, ws.c.subject_token, ws.c.disposed_at).where(
            _open_or_blocking(rule.id), ~sa.exists().where(m.c.subject_token == ws.c.subject_token)
        )
    ).all()
    if gone:
        count.closed = _close_gone(conn, compiled, gone, run_id, now)
    scratch.drop(conn, m)
    return count


def _inserted(conn: sa.Connection, insert: sa.Insert) -> int:
    """Run an INSERT … SELECT; the rows it inserted (the driver's row count, kept for an INSERT on request)."""
    return conn.execute(insert.execution_options(preserve_rowcount=True)).rowcount


def _close_gone(conn: sa.Connection, compiled: Compiled, gone: Sequence[Any], run_id: str, now: datetime) -> int:
    """Close the open warnings among ``gone`` with the reason; mark the disposed ones' condition cleared."""
    ws = warning_state
    reasons = _why_gone(conn, compiled, [g.subject_token for g in gone])
    cleared = [g.warning_id for g in gone if g.disposed_at is not None]
    for chunk in _chunks(cleared, 500):
        conn.execute(sa.update(ws).where(ws.c.warning_id.in_(chunk)).values(condition_cleared_at=now))
    by_reason: dict[str, list[str]] = {}
    for g in gone:
        if g.disposed_at is None:
            by_reason.setdefault(reasons[g.subject_token], []).append(g.warning_id)
    closed = 0
    for reason, ids in by_reason.items():
        closed += len(
            transition(
                conn,
                compiled._catalog,
                ids,
                "closed",
                actor=f"monitor run {run_id}",
                detail=reason,
                at=now,
                extra={"close_reason": reason},
            )
        )
    return closed


def _assumed(calendar: workdays.Calendar, dues: dict[str, date]) -> dict[str, Any]:
    """For the audit entry: the due dates counted by the stopgap (LIDM_WORKDAYS_ASSUME_WEEKDAYS_THROUGH), if any."""
    rules = sorted(rule for rule, due in dues.items() if calendar.assumed(due))
    return {"weekdays_assumed_for": rules} if rules else {}


def _why_gone(conn: sa.Connection, compiled: Compiled, tokens: list[str]) -> dict[str, str]:
    """For each person no longer flagged, the first condition of the rule that stopped holding."""
    reasons: dict[str, str] = {}
    left = set(tokens)
    for part in compiled.parts:
        if not left:
            break
        holding: set[str] = set()
        for chunk in _chunks(sorted(left), 500):
            holding |= set(conn.execute(compiled.holding(part, chunk)).scalars())
        for token in left - holding:
            reasons[token] = f"condition no longer met: {part.describe(False)}"
        left &= holding
    for token in left:  # every part holds on its own (e.g. the subject row changed between parts)
        reasons[token] = "condition no longer met"
    return reasons


def _chunks(items: list[Any], size: int) -> Iterable[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def monitor(settings: Any, *, as_of: date | None = None, rule_ids: Sequence[str] | None = None) -> MonitorResult:
    """One monitoring run with the deployment's settings: its rules, params, catalogue and central database."""
    from lidm.central import db
    from lidm.contracts.load import load_catalog
    from lidm.monitor.rules import load_rules

    catalog = load_catalog(settings.contracts_dir)
    rules = load_rules(settings.rules_dir, catalog=catalog, params=settings.rule_params)
    if rule_ids:
        unknown = set(rule_ids) - {r.id for r in rules}
        if unknown:
            raise WarningError(f"no rule {', '.join(sorted(unknown))}; see `lidm monitor rules`")
        rules = [r for r in rules if r.id in rule_ids]
    now = city_now(settings.timezone)
    day = as_of or now.date()
    calendar = workdays.Calendar(settings.workdays_assume_weekdays_through)
    due_dates(rules, day, calendar)  # a calendar that runs out stops the run here, before the database is touched
    engine = db.connect(settings)
    try:
        db.ensure_current(engine, settings)
        from lidm.errors import KeyringError
        from lidm.keys import load_keyring

        try:
            keyring = load_keyring(settings)  # seals the run's audit entry; a keyless run is audited unsealed
        except KeyringError:
            keyring = None
        return run_monitor(
            engine,
            rules,
            catalog,
            as_of=day,
            now=now,
            keyring=keyring,
            calendar=calendar,
            levels=settings.routing_levels,
        )
    finally:
        engine.dispose()
