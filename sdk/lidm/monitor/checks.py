"""What a disposition must meet beyond its contract's checks: its outcome and assistance agree, and its time fits.

``monitor.dispositions`` asks these once a row is valid and matched to its warning. Messages name fields, codes
and dates, never a personal value; ``monitor.results`` words them for the department in Chinese by their code.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa


def inconsistent_outcome(v: dict[str, Any]) -> str | None:
    """Outcome and assistance must agree (the contract's descriptions); a message with no values, or None."""
    outcome = v["outcome"]
    present = {k: v.get(k) not in (None, "") for k in ("assistance_kind", "amount", "granted_on", "reason")}
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
        if not present["reason"]:
            return f"outcome {outcome} needs a reason"
        extra = [k for k in ("assistance_kind", "amount") if present[k]]
        if extra:
            return f"outcome {outcome} grants nothing, but {', '.join(extra)} is filled in"
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


def out_of_order(disposed_at: datetime, warn: dict[str, Any], known: bool) -> tuple[str, str] | None:
    """(code, message) when a disposition's time does not fit its warning, else None.

    Days are compared for the warning's raising: a date typed without a time (midnight) on the day the warning was
    raised is not before it, and a department's clock a few minutes off does not refuse an answer. ``known``: the
    same disposition (warning and time) was taken before, so this corrects it and is not older than itself.
    """
    raised = warn.get("raised_at")
    if raised is not None and disposed_at.date() < raised.date():
        return (
            "before_warning",
            f"disposed_at {disposed_at:%Y-%m-%d} is before the warning was raised on {raised:%Y-%m-%d}",
        )
    newest = warn.get("newest")
    if not known and newest is not None and disposed_at < newest:
        return (
            "superseded",
            f"a newer answer for this warning, dated {newest:%Y-%m-%d %H:%M:%S}, was already taken; this one "
            f"(dated {disposed_at:%Y-%m-%d %H:%M:%S}) is older and is not applied over it",
        )
    return None
