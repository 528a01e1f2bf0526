"""Transfers and returns (转办/退回): a warning changes hands, and its life records each hand-over.

A holder that finds a warning is not its to act on answers it with outcome ``transferred`` (``transfer_to``: a
department code, landing at that department's office at the warning's level for the person, or an office's
consumer id) or ``returned`` (to the level above, lidm.monitor.routing.parent), with a ``handover_reason`` code
and a reason. The disposition is stored like any other; the warning then:

- changes holder (``target_consumer``, ``target_department``, ``action_level``) and goes back to ``raised``, not
  pushed and not acknowledged, so the next push sends it to the new holder, who acknowledges and answers it; an
  answer from the old holder is refused from then on (``other_department``), so nothing is answered twice;
- gets a new due date. **Deadline rule for hand-overs:** the new holder has as many working days as the first one
  had (the rule's time: the working days from the raising day to ``due_date``), counted from the day of the
  hand-over on the official calendar (lidm.workdays), so a warning passed on late does not arrive overdue; an
  overdue warning handed over stops being overdue (its overdue event stays in its history);
- records a ``transferred`` or ``returned`` event: from whom, to whom, the reason code, the holder's own time.

A warning changes hands at most ``MAX_HANDOVERS`` times; after that a transfer or return is refused and the holder
must answer it or refer it to the county coordination mechanism (一事一议, outcome ``referred``), so a warning no
one will take does not circle for ever.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

import sqlalchemy as sa

from lidm import workdays
from lidm.cells import text_value
from lidm.central.schema import warning_event, warning_state
from lidm.contracts.consumers import Consumers
from lidm.contracts.load import ContractCatalog
from lidm.monitor import routing

HANDOVERS = ("transferred", "returned")
MAX_HANDOVERS = 3


@dataclass(frozen=True)
class Policy:
    """The deployment's part in a hand-over: the levels it routes to (LIDM_ROUTING_LEVELS) and its calendar."""

    levels: Sequence[str] = routing.ALL_LEVELS
    calendar: workdays.Calendar = workdays.OFFICIAL


DEFAULT = Policy()


def destination(
    consumers: Consumers | None,
    departments: list[str],
    warn: dict[str, Any],
    v: dict[str, Any],
    enabled: Sequence[str] = routing.ALL_LEVELS,
) -> tuple[str, str] | tuple[None, tuple[str, str]]:
    """(new holder, its level), or (None, (refusal code, message)) when the hand-over cannot be made."""
    holder = warn["target_consumer"]
    if v["outcome"] == "returned":
        up = routing.parent(consumers, holder, warn["district_code"], enabled)
        if up is None:
            return None, (
                "cannot_return",
                f"{holder} leads the monitoring and cannot return a warning; transfer it or answer it",
            )
        return up
    target = str(v["transfer_to"]).strip()
    member = consumers.members.get(target) if consumers else None
    if target in departments:  # the department, at the warning's level for the person
        where = (warn["action_level"], warn["district_code"], warn["street_code"])
        found = routing.holder_for(consumers, target, *where, enabled)
    elif member is not None and member.acts_for in departments and member.kind in ("county", "street"):
        if warn["district_code"] not in member.districts:
            return None, ("wrong_area", f"{target} does not cover the district of warning {warn['warning_id']}")
        found = (target, member.level)
    else:
        return None, ("unknown_transfer_to", f"transfer_to {target} is neither a department code nor an office")
    if found[0] == holder:
        return None, ("transfer_to_self", f"transfer_to {target} is {holder} itself, which holds the warning")
    return found


def check(
    conn: sa.Connection,
    catalog: ContractCatalog,
    warn: dict[str, Any],
    v: dict[str, Any],
    enabled: Sequence[str] = routing.ALL_LEVELS,
    fresh: bool = True,
) -> tuple[tuple[str, str] | None, tuple[str, str] | None]:
    """For a new transfer or return: (where it goes, None), or (None, (refusal code, message)); (None, None) for
    any other outcome, and for a transfer or return taken before (``fresh`` false: a correction moves nothing)."""
    if v["outcome"] not in HANDOVERS or not fresh:
        return None, None
    departments = list(catalog["platform.warning"].field("target_department").enum or ())
    to = destination(catalog.consumers, departments, warn, v, enabled)
    if to[0] is None:
        return None, to[1]  # type: ignore[return-value]
    if warn["status"] == "disposed" or count(conn, warn["warning_id"]) >= MAX_HANDOVERS:
        why = "is disposed" if warn["status"] == "disposed" else f"changed hands {MAX_HANDOVERS} times"
        return None, ("no_handover", f"warning {warn['warning_id']} {why}; answer it or refer it (一事一议)")
    return to, None  # type: ignore[return-value]


def count(conn: sa.Connection, warning_id: str) -> int:
    """How often the warning changed hands so far."""
    e = warning_event
    query = sa.select(sa.func.count()).where(e.c.warning_id == warning_id, e.c.status.in_(HANDOVERS))
    return conn.execute(query).scalar_one()


def hand_over(
    conn: sa.Connection,
    catalog: ContractCatalog,
    w: sa.Table,
    warn: dict[str, Any],
    to: tuple[str, str],
    v: dict[str, Any],
    policy: Policy,
    actor: str,
    source: str,
) -> None:
    """Move the warning to its new holder, reset its push and acknowledgement, and record the hand-over.
    Times are the collect's (``v["updated_at"]``), as for every other change of a warning."""
    holder, level = to
    department = routing.holder_department(catalog, holder)
    outcome, reason_code, stated, now = v["outcome"], v["handover_reason"], v["disposed_at"], v["updated_at"]
    # The working days the first holder had, counted again from the hand-over day (lidm.workdays).
    calendar = policy.calendar
    span = calendar.working_days_between(warn["raised_at"].date(), warn["due_date"], "a hand-over's due date")
    due: date = calendar.add_working_days(now.date(), max(span, 1), "a hand-over's due date")
    conn.execute(
        sa.update(w)
        .where(w.c.warning_id == warn["warning_id"])
        .values(
            target_consumer=holder,
            target_department=department,
            action_level=level,
            status="raised",
            due_date=due,
            updated_at=now,
        )
    )
    conn.execute(
        sa.update(warning_state)
        .where(warning_state.c.warning_id == warn["warning_id"])
        .values(department=department, pushed_at=None, push_id=None, acknowledged_at=None, overdue_at=None)
    )
    detail = (
        f"{outcome} by {warn['target_consumer']} to {holder} ({level}), reason {reason_code}, due {due:%Y-%m-%d}, "
        f"at {text_value(stated)} ({source})"
    )
    conn.execute(
        sa.insert(warning_event).values(
            warning_id=warn["warning_id"], status=outcome, at=now, actor=actor, detail=detail
        )
    )
    warn.update(target_consumer=holder, target_department=department, action_level=level, status="raised")
    warn.update(acknowledged_at=None, due_date=due)
