"""A simulated department answering its warnings, for the demo and the tests (no real case, no real officer).

It reads what the platform pushed to the department's channel (complete outbox files, checked against their
manifest, then moved to ``outbox/received/``; or the rows of its warning table not yet acknowledged), and
answers: an acknowledgement for every warning, and dispositions — mostly assistance granted (a plausible kind
and amount for the hardship) or inclusion, some not eligible with a reason, terminations where the case calls
for one, one referred to county coordination, a few left open. With ``faults`` it adds one row naming a warning
that does not exist and one second disposition for a warning it has just disposed, so the platform's refusals
are exercised. The same seed and the same warnings give the same answers.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import random
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any

import sqlalchemy as sa

from lidm.config import Settings
from lidm.contracts.load import load_catalog
from lidm.monitor.channels import ACK_COLUMN, INBOX, OUTBOX, FileChannel, TableChannel, open_channel
from lidm.monitor.lifecycle import WARNING_CONTRACT
from lidm.monitor.push import MANIFEST_SUFFIX, granted_fields, warning_grant, warnings_csv

RECEIVED = "outbox/received"
DISPOSITION_COLUMNS = (
    "warning_id",
    "department",
    "outcome",
    "assistance_kind",
    "amount",
    "granted_on",
    "reason",
    "handler",
    "disposed_at",
    "id_number",
    "household_id",
    "district_code",
)
# (department, hardship) or hardship -> (outcome, assistance kind, lowest, highest amount in yuan)
_ANSWERS: dict[Any, tuple[str, str | None, int, int]] = {
    ("medical_insurance", "illness"): ("granted", "medical_assistance", 2000, 20000),
    ("medical_insurance", "policy_not_applied"): ("granted", "premium_subsidy", 200, 380),
    ("civil_affairs", "illness"): ("granted", "temporary_assistance", 1000, 5000),
    ("civil_affairs", "disability"): ("granted", "disability_subsidy", 600, 1800),
    ("civil_affairs", "return_risk"): ("included", "dibao_allowance", 600, 900),
    "education": ("granted", "education_assistance", 1000, 3000),
    "unemployment": ("granted", "employment_assistance", 500, 1500),
    "housing": ("granted", "housing_assistance", 3000, 30000),
    "disaster": ("granted", "disaster_relief", 500, 3000),
    "disability": ("granted", "disability_subsidy", 600, 1800),
    "return_risk": ("included", "dibao_allowance", 600, 900),
    "death": ("terminated", None, 0, 0),
    "duplicate": ("terminated", None, 0, 0),
}
_DEFAULT = ("granted", "temporary_assistance", 500, 3000)
_TERMINATED = {"death": "核实已死亡，停发并办理注销", "duplicate": "核实重复享受，已终止迁出地救助"}
_NOT_ELIGIBLE = ("经核查家庭收入超过认定标准", "已享受同类救助，不重复给予", "经入户核查困难情形已消除")
_REFERRED = "困难情形复杂，提交县级困难群众基本生活保障工作协调机制一事一议"
_INFORMED = "已入户告知最低生活保障、临时救助等救助政策及申请方式，本人暂不申请"  # 二(三) "应当告知相关救助政策"
_HANDLERS = ("王敏", "李静", "张伟", "刘洋", "陈芳", "杨帆", "赵磊", "黄丽", "周婷", "吴强")
NO_SUCH_WARNING = "W00000000NOSUCH00-0"


@dataclass
class Response:
    """What the simulated department read and answered: counts and file names only."""

    department: str
    warnings: int = 0
    acknowledged: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    faults: int = 0
    files: list[str] = field(default_factory=list)


def respond(settings: Settings, department: str, *, seed: int, today: date, faults: bool = False) -> Response:
    """Answer the warnings pushed to ``department`` since its last answer: acknowledgements and dispositions."""
    channel = open_channel(settings, department)
    with channel:
        warnings = _read_table(settings, channel) if isinstance(channel, TableChannel) else _read_outbox(channel)
        result = Response(department, warnings=len(warnings))
        if not warnings:
            return result
        acks, dispositions = _answers(department, warnings, seed, today, faults, result)
        if isinstance(channel, TableChannel):
            _write_table(settings, channel, acks, dispositions)
        else:
            result.files += _write_inbox(channel, department, today, acks, dispositions)
        result.acknowledged = len(acks)
    return result


def _read_outbox(channel: FileChannel) -> list[dict[str, str]]:
    """Rows of every complete push file (its manifest present and its sha256 right); taken files move aside."""
    names = channel.list(OUTBOX)
    rows: list[dict[str, str]] = []
    for name in names:
        manifest_name = name.removesuffix(".csv") + MANIFEST_SUFFIX
        if not name.endswith(".csv") or manifest_name not in names:
            continue
        manifest = json.loads(channel.read(OUTBOX, manifest_name))
        data = channel.read(OUTBOX, name)
        if hashlib.sha256(data).hexdigest() != manifest["sha256"]:
            continue  # not what the platform wrote: a real department would ask for it again
        rows += list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"))))
        channel.move(OUTBOX, name, RECEIVED)
        channel.move(OUTBOX, manifest_name, RECEIVED)
    return rows


def _warning_table(settings: Settings, channel: TableChannel) -> sa.Table:
    catalog = load_catalog(settings.contracts_dir)
    grant = warning_grant(catalog, channel.department)
    return channel.warning_table(granted_fields(catalog[WARNING_CONTRACT], grant) if grant else [])


def _read_table(settings: Settings, channel: TableChannel) -> list[dict[str, str]]:
    t = _warning_table(settings, channel)
    with channel.begin("read the pushed warnings") as conn:
        if not sa.inspect(conn).has_table(t.name, schema=t.schema):
            return []
        rows = conn.execute(sa.select(t).where(t.c[ACK_COLUMN].is_(None))).mappings().all()
    return [{k: "" if v is None else str(v) for k, v in r.items()} for r in rows]


def _answers(
    department: str,
    warnings: list[dict[str, str]],
    seed: int,
    today: date,
    faults: bool,
    result: Response,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    office, department = department, department.split(".", 1)[0]  # a county or street office acts for its department
    rng = random.Random(f"{seed}:{office}")
    # Sorted on what does not change between runs of the same city (warning ids carry a run id).
    ordered = sorted(warnings, key=lambda w: (w.get("rule_id", ""), w.get("id_number", ""), w["warning_id"]))
    opened = datetime.combine(today, time(8, 30))
    acks = [{"warning_id": w["warning_id"], "acknowledged_at": opened} for w in ordered]
    referred = rng.randrange(len(ordered)) if len(ordered) >= 3 else None
    dispositions: list[dict[str, Any]] = []
    for i, w in enumerate(ordered):
        draw = rng.random()
        at = datetime.combine(_answer_day(today, w), time(9)) + timedelta(minutes=rng.randrange(8 * 60))
        row = {
            "warning_id": w["warning_id"],
            "department": department,
            "handler": rng.choice(_HANDLERS),
            "disposed_at": at,
            "id_number": w.get("id_number", ""),
            "district_code": w.get("district_code", ""),
        }
        hardship = w.get("hardship_type", "")
        outcome, kind, low, high = _ANSWERS.get((department, hardship)) or _ANSWERS.get(hardship) or _DEFAULT
        if i == referred:
            row |= {"outcome": "referred", "reason": _REFERRED}
        elif draw < 0.08:
            continue  # still being handled: acknowledged, no disposition yet
        elif draw < 0.22:
            row |= {"outcome": "not_eligible", "reason": rng.choice(_NOT_ELIGIBLE)}
        elif draw < 0.4 and department == "civil_affairs" and not w.get("low_income_category"):
            row |= {"outcome": "informed_not_applied", "reason": _INFORMED}  # on no roster: told, did not apply
        elif outcome == "terminated":
            row |= {"outcome": "terminated", "reason": _TERMINATED.get(hardship, "核实后终止救助")}
        else:
            amount = rng.randrange(low, high + 1, 10) if high else None
            row |= {"outcome": outcome, "assistance_kind": kind, "amount": amount, "granted_on": at.date()}
        result.outcomes[row["outcome"]] += 1
        dispositions.append(row)
    if faults and dispositions:
        result.faults = 2
        unknown = dict(dispositions[0]) | {"warning_id": NO_SUCH_WARNING}
        final = [d for d in dispositions if d["outcome"] != "referred"] or dispositions
        again = dict(final[-1]) | {"disposed_at": final[-1]["disposed_at"] + timedelta(hours=1)}
        dispositions += [unknown, again]
    return acks, dispositions


def _answer_day(today: date, warning: dict[str, str]) -> date:
    """A department answers a warning once it was raised: the platform refuses an answer dated before that day."""
    try:
        return max(today, date.fromisoformat((warning.get("raised_at") or "")[:10]))
    except ValueError:
        return today


def _write_inbox(
    channel: FileChannel,
    department: str,
    today: date,
    acks: list[dict[str, Any]],
    dispositions: list[dict[str, Any]],
) -> list[str]:
    written = []
    for prefix, header, rows in (
        ("ack", ["warning_id", "acknowledged_at"], acks),
        ("disposition", list(DISPOSITION_COLUMNS), dispositions),
    ):
        if not rows:
            continue
        body = warnings_csv(header, rows)
        name = f"{prefix}_{department}_{today:%Y%m%d}_{hashlib.sha256(body).hexdigest()[:8]}.csv"
        channel.put(INBOX, name, body)
        written.append(name)
    return written


def _write_table(
    settings: Settings, channel: TableChannel, acks: list[dict[str, Any]], dispositions: list[dict[str, Any]]
) -> None:
    warnings_t = _warning_table(settings, channel)
    dispositions_t = channel.disposition_table(load_catalog(settings.contracts_dir)["platform.disposition"])
    with channel.begin("write acknowledgements and dispositions") as conn:
        conn.execute(
            sa.update(warnings_t)
            .where(warnings_t.c.warning_id == sa.bindparam("_id"))
            .values({ACK_COLUMN: sa.bindparam("_at")}),
            [{"_id": a["warning_id"], "_at": a["acknowledged_at"]} for a in acks],
        )
        if dispositions:
            conn.execute(
                sa.insert(dispositions_t),
                [{c: d.get(c) or None for c in DISPOSITION_COLUMNS} for d in dispositions],
            )
