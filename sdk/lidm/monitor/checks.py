"""What a disposition must meet beyond its contract's checks: its outcome and assistance agree, and its time fits;
and the numbers the platform gives a disposition.

``monitor.dispositions`` asks these once a row is valid and matched to its warning. Messages name fields, codes
and dates, never a personal value; ``monitor.results`` words them for the department in Chinese by their code.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa

CASE_BY_CASE = "case_by_case"  # 一事一议: the county coordination mechanism takes the case, a follow-up date set


def inconsistent_outcome(v: dict[str, Any]) -> str | None:
    """Outcome and assistance must agree (the contract's descriptions); a message with no values, or None."""
    outcome = v["outcome"]
    keys = ("assistance_kind", "amount", "granted_on", "reason", "follow_up_result")
    present = {k: v.get(k) not in (None, "") for k in keys}
    if outcome == "transferred" and not v.get("transfer_to"):
        return "outcome transferred needs transfer_to (a department code or an office's consumer id)"
    if outcome != "transferred" and v.get("transfer_to"):
        return f"transfer_to is filled in but the outcome is {outcome}, not transferred"
    if outcome in ("transferred", "returned") and not v.get("handover_reason"):
        return f"outcome {outcome} needs handover_reason"
    if outcome == "granted":
        missing = [k for k in ("assistance_kind", "amount", "granted_on") if not present[k]]
        if missing:
            return f"outcome granted needs assistance_kind, amount and granted_on; {', '.join(missing)} empty"
    elif outcome == "included":
        missing = [k for k in ("assistance_kind", "granted_on") if not present[k]]
        if missing:
            return f"outcome included needs assistance_kind and granted_on; {', '.join(missing)} empty"
    else:
        # a 一事一议 follow-up says its result in follow_up_result; the first referral says why in reason
        if not present["reason"] and not (outcome == CASE_BY_CASE and present["follow_up_result"]):
            return f"outcome {outcome} needs a reason"
        extra = [k for k in ("assistance_kind", "amount") if present[k]]
        if extra:
            return f"outcome {outcome} grants nothing, but {', '.join(extra)} is filled in"
    return None


def follow_up_problem(v: dict[str, Any]) -> tuple[str, str] | None:
    """(code, message) when the 一事一议 fields do not fit the outcome: case_by_case needs its follow-up date, and
    no other outcome carries either field; else None."""
    outcome = v["outcome"]
    if outcome == CASE_BY_CASE and v.get("follow_up_date") in (None, ""):
        return (
            "follow_up_date_missing",
            "outcome case_by_case (一事一议) needs follow_up_date, the date the county will follow the case up",
        )
    follow = [k for k in ("follow_up_date", "follow_up_result") if v.get(k) not in (None, "")]
    if follow and outcome != CASE_BY_CASE:
        return (
            "follow_up_not_case_by_case",
            f"{', '.join(follow)} belongs to outcome case_by_case (一事一议) only, not to {outcome}",
        )
    return None


def newest_taken(conn: sa.Connection, dispositions: sa.Table, warning_ids: Sequence[str]) -> dict[str, datetime]:
    """Per warning, the time of the newest disposition taken for it: an older answer arriving later is refused."""
    d = dispositions
    out: dict[str, datetime] = {}
    ids = list(dict.fromkeys(warning_ids))
    for start in range(0, len(ids), 500):
        query = (
            sa.select(d.c.warning_id, sa.func.max(d.c.disposed_at))
            .where(d.c.warning_id.in_(ids[start : start + 500]), d.c._retired_batch.is_(None))
            .group_by(d.c.warning_id)
        )
        out.update({wid: at for wid, at in conn.execute(query) if at is not None})
    return out


def referred_case_by_case(conn: sa.Connection, dispositions: sa.Table, warning_ids: Sequence[str]) -> set[str]:
    """Warnings with a case_by_case (一事一议) disposition taken: a later case_by_case row is its follow-up."""
    d = dispositions
    out: set[str] = set()
    ids = list(dict.fromkeys(warning_ids))
    for start in range(0, len(ids), 500):
        query = sa.select(d.c.warning_id).where(
            d.c.warning_id.in_(ids[start : start + 500]), d.c.outcome == CASE_BY_CASE, d.c._retired_batch.is_(None)
        )
        out.update(conn.execute(query).scalars())
    return out


def out_of_order(
    disposed_at: datetime, warn: dict[str, Any], known: bool, follow_up: bool = False
) -> tuple[str, str] | None:
    """(code, message) when a disposition's time does not fit its warning, else None.

    Days are compared for the warning's raising: a date typed without a time (midnight) on the day the warning was
    raised is not before it, and a department's clock a few minutes off does not refuse an answer. ``known``: the
    same disposition (warning and time) was taken before, so this corrects it and is not older than itself.
    ``follow_up``: a 一事一议 follow-up adds to the case record and changes no status, so a newer answer (the final
    granted, say) does not supersede it.
    """
    raised = warn.get("raised_at")
    if raised is not None and disposed_at.date() < raised.date():
        return (
            "before_warning",
            f"disposed_at {disposed_at:%Y-%m-%d} is before the warning was raised on {raised:%Y-%m-%d}",
        )
    newest = warn.get("newest")
    if not known and not follow_up and newest is not None and disposed_at < newest:
        return (
            "superseded",
            f"a newer answer for this warning, dated {newest:%Y-%m-%d %H:%M:%S}, was already taken; this one "
            f"(dated {disposed_at:%Y-%m-%d %H:%M:%S}) is older and is not applied over it",
        )
    return None


def disposition_id(warning_id: str, disposed_at: datetime) -> str:
    """The platform's number for a disposition: the same warning and time always give the same number."""
    digest = hashlib.sha256(f"{warning_id}|{disposed_at.isoformat(sep=' ')}".encode()).hexdigest()
    return f"D{disposed_at:%Y%m%d}-{digest[:20]}"


def raw_id(row: dict[str, str | None]) -> str:
    """A disposition number for a row that did not validate: from its text, so the same row gets the same one."""
    text = f"{row.get('warning_id') or ''}|{row.get('disposed_at') or ''}"
    return "R-" + hashlib.sha256(text.encode("utf-8")).hexdigest()[:30]
