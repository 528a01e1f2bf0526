"""What the platform does with a department's answers: match each to its warning, then apply, refuse or skip it.

The intake (``monitor.feedback``) reads the rows from the department's channel; here each acknowledgement row
acknowledges the department's own open warning or is refused (unknown, another department's) or unchanged, and
each disposition row is validated by the contract's validator (types, required, codes, id-number checksum), then
matched to its warning and ends in exactly one of:

- applied: stored protected in platform_disposition; a final outcome (``FINAL``) moves the warning to disposed;
  ``referred`` and ``case_by_case`` (一事一议, with its follow-up date) acknowledge it, and it stays open for the
  final disposition. A later case_by_case row is the 一事一议's follow-up: taken even after a newer answer or the
  warning's disposal, since it changes no status;
- refused, with a reason in lidm_disposition_result that names codes and ids, never a personal value (checks beyond
  the contract, outcome against assistance and the time against the warning's, are in ``monitor.checks``: an
  answer dated before its warning was raised, or older than one already taken for it, is refused);
- unchanged: the same disposition was taken before (its id comes from warning_id + disposed_at, so a re-sent row is
  recognised), or this very row of this very source was already decided. Transfers and returns: monitor.handover.

One source is one central transaction. Warnings change status with the collect's time (``updated_at`` only
grows: consumers extract on it); the department's own times stay in the disposition row and the event detail.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pyarrow as pa
import sqlalchemy as sa

from lidm.cells import text_value
from lidm.central import audit, db, release
from lidm.central.schema import dataset_table, warning_state
from lidm.central.schema import disposition_result as result_table
from lidm.contracts.load import ContractCatalog
from lidm.errors import LidmError
from lidm.keys import Keyring
from lidm.monitor import checks, handover
from lidm.monitor.channels import LATER_FIELDS, PLATFORM_ISSUED
from lidm.monitor.checks import CASE_BY_CASE, disposition_id
from lidm.monitor.lifecycle import transition, warning_table
from lidm.monitor.routing import holder_department
from lidm.protect import Protector
from lidm.validate import ROW, Validator

log = logging.getLogger("lidm.monitor.dispositions")
DISPOSITION_CONTRACT = "platform.disposition"
# informed_not_applied: told of the policy (应当告知相关救助政策), not applied; a reason, no amount.
# data_error: 比对数据有误, the shared data was wrong (容错纠错): final, but not "not eligible" (monitor.quality).
_CLOSING = ("included", "granted", "not_eligible", "terminated", "transferred_to_edge", "informed_not_applied")
FINAL = (*_CLOSING, "data_error")
# Outcomes that keep the warning open for a final one: handed to the county, 一事一议.
PENDING = ("referred", CASE_BY_CASE)
_PENDING_WORDS = {"referred": "referred to county coordination", CASE_BY_CASE: "一事一议 by county coordination"}
ACKABLE = ("raised", "pushed", "overdue")


@dataclass
class SourceResult:
    """What one file (or one read of a table) gave: counts, plus why it was rejected whole."""

    department: str
    source: str
    kind: str  # acknowledgements | dispositions
    status: str  # taken | rejected
    rows: int = 0
    acknowledged: int = 0
    applied: int = 0
    refused: int = 0
    unchanged: int = 0
    reason: str | None = None


@dataclass
class Decision:
    row_number: int | None
    status: str  # applied | refused | unchanged
    disposition_id: str
    row_digest: str | None
    reason: str | None = None
    code: str | None = None
    warning_id: str | None = None  # set once the row names a known warning
    recorded: bool = True  # False: this row of this source was decided before; nothing new is written
    earlier: str | None = None  # then: what was decided (applied or refused), for the department's view
    problems: tuple[tuple[str, str], ...] = ()  # (field, check) that the contract's checks refused


class Intake:
    """Applies what one collect reads; ``refusals`` counts refused rows by reason code (shared with the result)."""

    def __init__(
        self,
        catalog: ContractCatalog,
        keyring: Keyring,
        engine: sa.Engine,
        now: datetime,
        *,
        city_prefix: str,
        timezone: str,
        refusals: Counter[str],
        handovers: handover.Policy = handover.DEFAULT,
    ) -> None:
        self.catalog = catalog
        self.engine = engine
        self.now = now
        self.contract = catalog[DISPOSITION_CONTRACT]
        self.w = warning_table(catalog)
        self.d = dataset_table(self.contract, sa.MetaData())
        self.protector = Protector(self.contract, keyring)
        self.validator = Validator(self.contract, city_prefix, timezone)
        self.row_key = hashlib.blake2b(keyring.token.root_key, digest_size=32, person=b"lidm-dispo").digest()
        self.refusals = refusals
        self.handovers = handovers  # where a hand-over may land, and how its new due date is counted

    # ------------------------------------------------------------------------------------------ acks

    def awaiting_ack(self, dept: str) -> list[str]:
        """Warnings pushed to the department and not yet acknowledged: the only rows worth reading back."""
        w, ws = self.w, warning_state
        query = (
            sa.select(w.c.warning_id)
            .join(ws, ws.c.warning_id == w.c.warning_id)
            .where(
                w.c.target_consumer == dept,
                ws.c.pushed_at.is_not(None),
                ws.c.acknowledged_at.is_(None),
                w.c.status.in_(ACKABLE),
            )
        )
        with self.engine.connect() as conn:
            return list(conn.execute(query).scalars())

    def _warnings(self, conn: sa.Connection, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        w, ws = self.w, warning_state
        query = sa.select(
            w.c.warning_id,
            w.c.target_department,
            *(w.c.target_consumer, w.c.action_level, w.c.street_code, w.c.due_date),
            w.c.status,
            w.c.id_number_token,
            w.c.household_id_token,
            w.c.district_code,
            w.c.raised_at,
            ws.c.acknowledged_at,
            ws.c.disposition_id,
        ).join(ws, ws.c.warning_id == w.c.warning_id)
        return db.by_key(conn, query, w.c.warning_id, ids)

    def acks(
        self, dept: str, source: str, rows: list[dict[str, Any]], numbers: list[int]
    ) -> tuple[SourceResult, list[dict[str, Any]]]:
        """Acknowledge the department's own open warnings; other rows are refused (unknown, not theirs) or
        unchanged (already acknowledged, disposed or closed)."""
        outcome = SourceResult(dept, source, "acknowledgements", "taken", rows=len(rows))
        report: list[dict[str, Any]] = []
        with self.engine.begin() as conn:
            known = self._warnings(conn, [r.get("warning_id") or "" for r in rows])
            by_time: dict[str, list[str]] = {}
            for number, r in zip(numbers, rows, strict=True):
                warn = known.get(r.get("warning_id") or "")
                if warn is None:
                    status = "unknown_warning"
                elif warn["target_consumer"] != dept:
                    status = "other_department"
                elif warn["acknowledged_at"] is not None or warn["status"] not in ACKABLE:
                    status = "unchanged"
                else:
                    status = "acknowledged"
                    warn["acknowledged_at"] = self.now  # a second line for it in this file is unchanged
                    by_time.setdefault(_stated_time(r.get("acknowledged_at")), []).append(warn["warning_id"])
                report.append({"row": number, "status": status})
            for stated, ids in by_time.items():
                outcome.acknowledged += len(
                    transition(
                        conn,
                        self.catalog,
                        ids,
                        "acknowledged",
                        actor=f"department {dept}",
                        detail=f"acknowledged at {stated} ({source.rsplit('/', 1)[-1]})",
                        at=self.now,
                    )
                )
            taken = Counter(r["status"] for r in report)
            audit.append(
                conn,
                actor="collect",
                action="acks.collect",
                subject=source,
                detail={
                    "department": dept,
                    "rows": len(rows),
                    "acknowledged": outcome.acknowledged,
                    "refused": taken["unknown_warning"] + taken["other_department"],
                },
                keyring=self.protector.keyring,
            )
        statuses = Counter(r["status"] for r in report)
        outcome.refused = statuses["unknown_warning"] + statuses["other_department"]
        outcome.unchanged = outcome.rows - outcome.acknowledged - outcome.refused
        for code in ("unknown_warning", "other_department"):
            if statuses[code]:
                self.refusals[f"ack.{code}"] += statuses[code]
                log.info("collect from %s: %d acknowledgement row(s) refused: %s", dept, statuses[code], code)
        return outcome, report

    # ------------------------------------------------------------------------------------------ dispositions

    def _digest(self, values: Sequence[Any]) -> str:
        text = "\x1f".join("\x00" if v is None else text_value(v) for v in values)
        return hashlib.blake2b(text.encode("utf-8"), key=self.row_key, digest_size=32).hexdigest()

    def _row_digest(self, row: dict[str, Any]) -> str:
        """A later field left empty is left out, so an answer taken before the field existed is still known."""
        names = [f.name for f in self.contract.fields if f.name not in PLATFORM_ISSUED]
        return self._digest([row.get(n) for n in names if n not in LATER_FIELDS or row.get(n) is not None])

    def dispositions(
        self,
        dept: str,
        source: str,
        rows: list[dict[str, str | None]],
        numbers: list[int],
        malformed: list[dict[str, Any]],
    ) -> tuple[SourceResult, list[Decision]]:
        """Decide every row of one source in one central transaction; returns the counts and the decisions."""
        batch_id = str(uuid.uuid4())
        with self.engine.begin() as conn:
            decisions = self._decide(conn, dept, source, rows, numbers, malformed, batch_id)
            fresh = [d for d in decisions if d.recorded]
            if fresh:
                conn.execute(
                    sa.insert(result_table),
                    [
                        {
                            "disposition_id": d.disposition_id,
                            "warning_id": d.warning_id,
                            "department": dept,
                            "source_name": source,
                            "row_number": d.row_number,
                            "row_digest": d.row_digest,
                            "status": d.status,
                            "reason": d.reason,
                            "decided_at": self.now,
                        }
                        for d in fresh
                    ],
                )
            counts = Counter(d.status for d in decisions)
            outcome = SourceResult(
                dept,
                source,
                "dispositions",
                "taken",
                rows=len(decisions),
                applied=counts["applied"],
                refused=counts["refused"],
                unchanged=counts["unchanged"],
            )
            if outcome.rows != len(rows) + len(malformed) or outcome.rows != sum(counts.values()):
                read = len(rows) + len(malformed)
                raise LidmError(f"{source}: {outcome.rows} decisions for {read} rows; rolled back")
            release.sync(conn, self.protector.keyring, [self.d.name])
            audit.append(
                conn,
                actor="collect",
                action="dispositions.collect",
                subject=source,
                detail={"department": dept, "batch": batch_id}
                | {k: getattr(outcome, k) for k in ("rows", "applied", "refused", "unchanged")},
                keyring=self.protector.keyring,
            )
        for d in decisions:
            if d.status == "refused" and d.recorded:
                self.refusals[d.code or "refused"] += 1
        return outcome, decisions

    def _decide(
        self,
        conn: sa.Connection,
        dept: str,
        source: str,
        rows: list[dict[str, str | None]],
        numbers: list[int],
        malformed: list[dict[str, Any]],
        batch_id: str,
    ) -> list[Decision]:
        r = result_table
        earlier = {
            (e.row_number, e.row_digest): e
            for e in conn.execute(
                sa.select(r.c.row_number, r.c.row_digest, r.c.status, r.c.reason, r.c.disposition_id).where(
                    r.c.department == dept, r.c.source_name == source
                )
            )
        }
        decided: dict[int, Decision] = {}

        def seen(i: int, number: int | None, digest: str) -> bool:
            e = earlier.get((number, digest))
            if e is not None:
                decided[i] = Decision(
                    number, "unchanged", e.disposition_id, digest, e.reason, recorded=False, earlier=e.status
                )
            return e is not None

        def refuse(i: int, did: str, code: str, message: str, wid: str | None = None) -> None:
            decided[i] = Decision(numbers[i], "refused", did, digests[i], f"[{code}] {message}", code, wid)

        out_of_band: list[Decision] = []
        for m in malformed:
            digest = self._digest([m.get("text")])
            e = earlier.get((m["row"], digest))
            if e is not None:
                out_of_band.append(Decision(m["row"], "unchanged", e.disposition_id, digest, e.reason, recorded=False))
            else:
                message = f"row has {m['actual']} fields, the header has {m['expected']}"
                out_of_band.append(
                    Decision(m["row"], "refused", "-", digest, f"[malformed_row] {message}", "malformed_row")
                )

        digests = [self._row_digest(row) for row in rows]
        warnings = self._warnings(conn, [row.get("warning_id") or "" for row in rows])
        for wid, at in checks.newest_taken(conn, self.d, list(warnings)).items():
            warnings[wid]["newest"] = at
        for wid in checks.referred_case_by_case(conn, self.d, list(warnings)):
            warnings[wid]["case_by_case"] = True
        candidates: list[int] = []
        for i, (number, row, digest) in enumerate(zip(numbers, rows, digests, strict=True)):
            if seen(i, number, digest):
                continue
            wid = row.get("warning_id")
            if wid and wid not in warnings:
                # The value is not repeated: a shifted column could put anything there.
                refuse(i, checks.raw_id(row), "unknown_warning", "no warning with this warning_id was raised")
                continue
            candidates.append(i)

        # Validate what is left against the contract, with what the platform supplies filled in.
        table = self._arrow(rows, candidates, warnings, dept)
        checked = self.validator.validate(self.validator.normalize(table))
        for k in checked.bad_rows:
            i = candidates[int(k)]
            problems = checked.problems[int(k)]
            code = f"invalid.{problems[0].code}"
            message = "; ".join(dict.fromkeys(p.message for p in problems))
            wid = rows[i].get("warning_id")
            refuse(i, checks.raw_id(rows[i]), code, message, wid if wid in warnings else None)
            decided[i].problems = tuple(dict.fromkeys((p.field, p.code) for p in problems))
        valid = checked.valid.to_pylist()
        protected = self.protector.protect(checked.valid).to_pylist() if valid else []
        ids = [disposition_id(v["warning_id"], v["disposed_at"]) for v in valid]
        stored = self._stored(conn, ids)
        for v, p, did in zip(valid, protected, ids, strict=True):
            i = candidates[v.pop(ROW)]
            self._judge(conn, dept, source, i, numbers[i], v, p, did, digests[i], warnings, stored, decided, batch_id)
        ordered = [decided[i] for i in range(len(rows))]
        return sorted(ordered + out_of_band, key=lambda d: d.row_number or 0)

    def _arrow(
        self, rows: list[dict[str, str | None]], idx: list[int], warnings: dict[str, dict[str, Any]], dept: str
    ) -> pa.Table:
        cols: dict[str, list[Any]] = {f.name: [] for f in self.contract.fields}
        stamp = text_value(self.now)
        for i in idx:
            row = rows[i]
            warn = warnings.get(row.get("warning_id") or "")
            for f in self.contract.fields:
                value = row.get(f.name)
                if f.name == "disposition_id":
                    value = "D-pending"  # issued below from the validated warning_id and disposed_at
                elif f.name == "updated_at":
                    value = stamp
                elif f.name == "department" and value is None:
                    value = holder_department(self.catalog, dept)
                elif f.name == "district_code" and value is None and warn is not None:
                    value = warn["district_code"]
                cols[f.name].append(value)
        table = pa.table({k: pa.array(v, pa.string()) for k, v in cols.items()})
        return table.append_column(ROW, pa.array(range(len(idx)), pa.int64()))

    def _stored(self, conn: sa.Connection, ids: list[str]) -> dict[str, dict[str, Any]]:
        d = self.d
        query = sa.select(d.c.disposition_id, d.c._row_digest, d.c.outcome, d.c.warning_id)
        return db.by_key(conn, query, d.c.disposition_id, ids)

    def _judge(
        self,
        conn: sa.Connection,
        dept: str,
        source: str,
        i: int,
        number: int,
        v: dict[str, Any],
        p: dict[str, Any],
        did: str,
        raw_digest: str,
        warnings: dict[str, dict[str, Any]],
        stored: dict[str, dict[str, Any]],
        decided: dict[int, Decision],
        batch_id: str,
    ) -> None:
        """The matching rules, in order; the first that fails refuses the row."""
        wid = v["warning_id"]
        warn = warnings[wid]

        def refuse(code: str, message: str) -> None:
            decided[i] = Decision(number, "refused", did, raw_digest, f"[{code}] {message}", code, wid)

        digest = self._row_digest(v)
        earlier = stored.get(did)
        if v["department"] != holder_department(self.catalog, dept):
            return refuse(
                "department_mismatch", f"department is {v['department']} but the row came through {dept}'s channel"
            )
        if warn["target_consumer"] != dept:
            return refuse("other_department", f"warning {wid} is held by {warn['target_consumer']}, not {dept}")
        if earlier is not None and earlier["_row_digest"] == digest:
            note = f"disposition {did} was taken before"
            decided[i] = Decision(number, "unchanged", did, raw_digest, note, None, wid)
            return None
        if warn["status"] == "closed":
            return refuse("closed", f"warning {wid} was closed (its condition went away); no disposition is taken")
        follow = checks.follow_up_problem(v)
        if follow:
            return refuse(*follow)
        problem = checks.inconsistent_outcome(v)
        if problem:
            return refuse("inconsistent_outcome", problem)
        if p["id_number_token"] != warn["id_number_token"]:
            return refuse("id_number_mismatch", f"id_number is not the person of warning {wid}")
        follow_up = v["outcome"] == CASE_BY_CASE and bool(warn.get("case_by_case"))
        late = checks.out_of_order(v["disposed_at"], warn, earlier is not None, follow_up)
        if late:
            return refuse(*late)
        to, refusal = handover.check(conn, self.catalog, warn, v, self.handovers.levels, fresh=earlier is None)
        if refusal:
            return refuse(*refusal)
        if earlier is None and warn["status"] == "disposed" and not follow_up:
            return refuse(
                "duplicate",
                f"warning {wid} is already disposed (disposition {warn['disposition_id']}); a correction must "
                "repeat that disposition's disposed_at",
            )
        row = {c.name: p.get(c.name) for c in self.d.columns if c.name in p}
        row |= {"disposition_id": did, "_batch_id": batch_id, "_row_digest": digest, "_retired_batch": None}
        if row.get("household_id_token") is None:
            row["household_id_token"] = warn["household_id_token"]
        if earlier is None:
            conn.execute(sa.insert(self.d).values(row))
        else:
            conn.execute(sa.update(self.d).where(self.d.c.disposition_id == did).values(row))
        stored[did] = {"disposition_id": did, "_row_digest": digest, "outcome": v["outcome"], "warning_id": wid}
        warn["newest"] = max(v["disposed_at"], warn.get("newest") or v["disposed_at"])
        file = source.rsplit("/", 1)[-1]
        if v["outcome"] in FINAL and warn["status"] != "disposed":
            transition(
                conn,
                self.catalog,
                [wid],
                "disposed",
                actor=f"department {dept}",
                detail=f"{v['outcome']} at {text_value(v['disposed_at'])} ({file})",
                at=self.now,
                extra={"disposition_id": did},
            )
            warn["status"], warn["disposition_id"] = "disposed", did
        elif to is not None:
            handover.hand_over(conn, self.catalog, self.w, warn, to, v, self.handovers, f"department {dept}", file)
        elif v["outcome"] in PENDING and warn["acknowledged_at"] is None and warn["status"] in ACKABLE:
            transition(
                conn,
                self.catalog,
                [wid],
                "acknowledged",
                actor=f"department {dept}",
                detail=f"{_PENDING_WORDS[v['outcome']]} at {text_value(v['disposed_at'])} ({file})",
                at=self.now,
            )
            warn["acknowledged_at"] = self.now
        if v["outcome"] == CASE_BY_CASE:
            warn["case_by_case"] = True
        note = f"correction of disposition {did}" if earlier is not None else None
        if follow_up and earlier is None:
            note = "follow-up of the 一事一议 (case_by_case) already taken for this warning"
        decided[i] = Decision(number, "applied", did, raw_digest, note, None, wid)
        return None


def _stated_time(text: str | None) -> str:
    """The department's own time as a timestamp, for an event's detail; anything else is not repeated."""
    try:
        return text_value(datetime.fromisoformat((text or "").replace("/", "-")))
    except ValueError:
        return "an unstated time"
