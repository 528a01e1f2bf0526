"""Take in what departments return: acknowledgements, then dispositions, checked and matched to their warnings.

From a folder or SFTP channel: ``inbox/ack_*.csv`` (warning_id, acknowledged_at) and ``inbox/disposition_*.csv``
(the platform.disposition fields a department sends: warning_id, department, outcome, assistance_kind, amount,
granted_on, reason, handler, disposed_at, id_number, household_id, district_code; department and district_code
may be left out: the channel and the warning supply them). From a table channel: the ``acknowledged_at`` column
of the department's warning table, and the rows of its disposition table not yet taken (``lidm_status`` empty).

Each disposition row is validated by the SDK's contract validator (types, required, codes, id-number checksum),
then matched to its warning and ends in exactly one of:

- applied: stored protected in platform_disposition; a final outcome (included, granted, not_eligible,
  terminated) moves the warning to disposed; ``referred`` (一事一议) is stored and acknowledges the warning,
  which stays open for the final disposition the contract allows to follow;
- refused, with a reason in lidm_disposition_result that names codes and ids, never a personal value;
- unchanged: the same disposition was taken before (its id is derived from warning_id + disposed_at, so a
  re-sent row is recognised), or this very row of this very source was already decided.

A file is one central transaction; then it moves to ``inbox/done/`` with a ``.result.json`` (per row: status,
disposition id, reason), or, when it cannot be read at all, to ``inbox/rejected/`` with a ``.reason.txt``. A
crash between the commit and the move re-reads the file next time, which records nothing new. Warnings change
status with the collect's time (``updated_at`` must only grow, consumers extract on it); the department's own
times stay in the disposition row and the event detail.
"""

from __future__ import annotations

import fnmatch
import hashlib
import io
import json
import logging
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

import pyarrow as pa
import sqlalchemy as sa

from lidm.cells import text_value
from lidm.central import audit, db, release
from lidm.central.schema import dataset_table, warning_state
from lidm.central.schema import disposition_result as result_table
from lidm.config import Settings
from lidm.contracts.load import ContractCatalog, load_catalog
from lidm.errors import ConfigError, LidmError, RejectedBatch
from lidm.keys import Keyring, load_keyring
from lidm.monitor.channels import (
    DONE,
    INBOX,
    PLATFORM_ISSUED,
    REJECTED,
    ChannelError,
    FileChannel,
    TableChannel,
    open_channel,
)
from lidm.monitor.lifecycle import WARNING_CONTRACT, city_now, transition, warning_table
from lidm.monitor.push import departments_of, granted_fields, warning_grant
from lidm.protect import Protector
from lidm.sources.csvfile import read_csv_chunks
from lidm.validate import ROW, Validator

log = logging.getLogger("lidm.monitor.feedback")
DISPOSITION_CONTRACT = "platform.disposition"
FINAL = ("included", "granted", "not_eligible", "terminated")
ACK_PATTERN, DISPOSITION_PATTERN = "ack_*.csv", "disposition_*.csv"
# Columns a disposition file must have; department and district_code are supplied when left out.
REQUIRED_COLUMNS = ("warning_id", "outcome", "handler", "disposed_at", "id_number")
_ACKABLE = ("raised", "pushed", "overdue")


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
class CollectResult:
    """Everything a collect took in; counts, codes and names only, safe for logs and XCom."""

    sources: list[SourceResult] = field(default_factory=list)
    refusals: Counter[str] = field(default_factory=Counter)  # reason code -> rows
    failed: dict[str, str] = field(default_factory=dict)  # department -> why its channel failed
    checked: list[str] = field(default_factory=list)  # departments whose channel was looked at

    def totals(self, department: str | None = None) -> dict[str, int]:
        """Counts summed over sources (of one department)."""
        keys = ("rows", "acknowledged", "applied", "refused", "unchanged")
        picked = [s for s in self.sources if department is None or s.department == department]
        out = {k: sum(getattr(s, k) for s in picked) for k in keys}
        out["files"] = sum(1 for s in picked if s.status == "taken")
        out["rejected_files"] = sum(1 for s in picked if s.status == "rejected")
        return out

    def departments(self) -> list[str]:
        return list(dict.fromkeys(self.checked + [s.department for s in self.sources] + list(self.failed)))

    def as_dict(self) -> dict[str, Any]:
        return {
            "totals": self.totals(),
            "departments": {d: self.totals(d) for d in self.departments()},
            "refusals": dict(self.refusals),
            "failed": self.failed,
            "sources": [asdict(s) for s in self.sources],
        }


class CollectFailed(ChannelError):
    """Some departments' channels failed; the others were taken in. ``result`` holds what was."""

    def __init__(self, result: CollectResult) -> None:
        self.result = result
        super().__init__("; ".join(f"collect from {d} failed: {why}" for d, why in result.failed.items()))


@dataclass
class _Decision:
    row_number: int | None
    status: str  # applied | refused | unchanged
    disposition_id: str
    row_digest: str | None
    reason: str | None = None
    code: str | None = None
    warning_id: str | None = None  # set once the row names a known warning
    recorded: bool = True  # False: this row of this source was decided before; nothing new is written
    earlier: str | None = None  # then: what was decided (applied or refused), for the department's view


def disposition_id(warning_id: str, disposed_at: datetime) -> str:
    """The platform's number for a disposition: the same warning and time always give the same number."""
    digest = hashlib.sha256(f"{warning_id}|{disposed_at.isoformat(sep=' ')}".encode()).hexdigest()
    return f"D{disposed_at:%Y%m%d}-{digest[:20]}"


def collect_dispositions(
    settings: Settings, *, departments: Sequence[str] | None = None, now: datetime | None = None
) -> CollectResult:
    """Take in every department's (or the named ones') acknowledgements and dispositions from its channel."""
    catalog = load_catalog(settings.contracts_dir)
    known = departments_of(catalog)
    unknown = sorted(set(departments or ()) - set(known))
    if unknown:
        raise ConfigError(f"no department {', '.join(unknown)}; one of {', '.join(known)}")
    engine = db.connect(settings)
    try:
        db.ensure_current(engine)
        collector = _Collector(settings, catalog, load_keyring(settings), engine, now or city_now(settings.timezone))
        targets = list(departments or known)
        for department in targets:
            try:
                collector.department(department)
            except LidmError as exc:
                if len(targets) == 1:
                    raise  # one department asked (an Airflow task): its own error, retryable or not
                log.warning("collect from %s failed: %s", department, exc)
                collector.result.failed[department] = str(exc)
        if collector.result.failed:
            raise CollectFailed(collector.result)
        return collector.result
    finally:
        engine.dispose()


class _Collector:
    def __init__(
        self, settings: Settings, catalog: ContractCatalog, keyring: Keyring, engine: sa.Engine, now: datetime
    ) -> None:
        self.settings = settings
        self.catalog = catalog
        self.engine = engine
        self.now = now
        self.contract = catalog[DISPOSITION_CONTRACT]
        self.w = warning_table(catalog)
        self.d = dataset_table(self.contract, sa.MetaData())
        self.protector = Protector(self.contract, keyring)
        self.validator = Validator(self.contract, settings.city_prefix, settings.timezone)
        self.row_key = hashlib.blake2b(keyring.token.root_key, digest_size=32, person=b"lidm-dispo").digest()
        self.result = CollectResult()

    # ------------------------------------------------------------------------------------------ channels

    def department(self, department: str) -> None:
        self.result.checked.append(department)
        channel = open_channel(self.settings, department)
        with channel:
            if isinstance(channel, TableChannel):
                self._table(channel)
            else:
                self._folder(channel)
        taken = self.result.totals(department)
        if taken["rows"] or taken["rejected_files"]:
            log.info(
                "collect from %s: %d file(s), %d rejected; acknowledged %d, applied %d, refused %d, unchanged %d",
                department,
                taken["files"],
                taken["rejected_files"],
                taken["acknowledged"],
                taken["applied"],
                taken["refused"],
                taken["unchanged"],
            )

    def _folder(self, channel: FileChannel) -> None:
        names = channel.list(INBOX)
        acks = [n for n in names if fnmatch.fnmatch(n.lower(), ACK_PATTERN)]
        dispositions = [n for n in names if fnmatch.fnmatch(n.lower(), DISPOSITION_PATTERN)]
        other = len(names) - len(acks) - len(dispositions)
        if other:
            log.info(
                "collect from %s: %d inbox file(s) are neither %s nor %s; left in place",
                channel.department,
                other,
                ACK_PATTERN,
                DISPOSITION_PATTERN,
            )
        # Acknowledgements first: a warning acknowledged and disposed in one round goes through both.
        for name in acks + dispositions:
            self._file(channel, name, "acknowledgements" if name in acks else "dispositions")

    def _file(self, channel: FileChannel, name: str, kind: str) -> None:
        source = channel.name_of(INBOX, name)
        data = channel.read(INBOX, name)
        try:
            rows, numbers, malformed = self._read_csv(data, source, channel.encoding, kind)
        except RejectedBatch as exc:
            channel.move(INBOX, name, REJECTED)
            channel.put(REJECTED, f"{name}.reason.txt", f"{exc}\n".encode())
            log.warning("collect from %s: %s rejected: %s", channel.department, name, exc)
            self.result.sources.append(SourceResult(channel.department, source, kind, "rejected", reason=str(exc)))
            return
        if kind == "acknowledgements":
            outcome, rows_out = self._acks(channel.department, source, rows, numbers)
        else:
            outcome, decisions = self._dispositions(channel.department, source, rows, numbers, malformed)
            rows_out = [
                {"row": d.row_number, "status": d.status, "disposition_id": d.disposition_id, "reason": d.reason}
                for d in decisions
            ]
        channel.move(INBOX, name, DONE)
        summary = {k: v for k, v in asdict(outcome).items() if k not in ("department", "source", "status")}
        report = json.dumps(summary | {"file": name, "results": rows_out}, ensure_ascii=False, indent=1)
        channel.put(DONE, f"{name}.result.json", report.encode("utf-8"))
        self.result.sources.append(outcome)

    def _read_csv(
        self, data: bytes, source: str, encoding: str, kind: str
    ) -> tuple[list[dict[str, str | None]], list[int], list[dict[str, Any]]]:
        """Rows as trimmed text (empty = None), their row numbers (1 = first after the header), malformed rows."""
        names, chunks, _reader, malformed = read_csv_chunks(io.BytesIO(data), file=source, encoding=encoding)
        need = ("warning_id",) if kind == "acknowledgements" else REQUIRED_COLUMNS
        missing = [c for c in need if c not in names]
        if missing:
            raise RejectedBatch(
                "missing_column",
                f"the header lacks {', '.join(missing)}; a {kind[:-1]} file has the columns "
                + ("warning_id, acknowledged_at" if kind == "acknowledgements" else "of platform.disposition"),
                file=source,
                row=1,
            )
        rows: list[dict[str, str | None]] = []
        numbers: list[int] = []
        for chunk in chunks:
            for r in chunk.to_pylist():
                numbers.append(r.pop(ROW))
                rows.append({k: _clean(v) for k, v in r.items()})
        return rows, numbers, malformed

    def _table(self, channel: TableChannel) -> None:
        dept = channel.department
        grant = warning_grant(self.catalog, dept)
        fields = granted_fields(self.catalog[WARNING_CONTRACT], grant) if grant else []
        warnings_t = channel.warning_table(fields)
        dispositions_t = channel.disposition_table(self.contract)
        waiting = self._awaiting_ack(dept)
        with channel.begin("read acknowledgements and dispositions") as conn:
            insp = sa.inspect(conn)
            acked: list[sa.Row[Any]] = []
            if waiting and insp.has_table(warnings_t.name, schema=warnings_t.schema):
                for start in range(0, len(waiting), 500):
                    acked += conn.execute(
                        sa.select(warnings_t.c.warning_id, warnings_t.c.acknowledged_at).where(
                            warnings_t.c.warning_id.in_(waiting[start : start + 500]),
                            warnings_t.c.acknowledged_at.is_not(None),
                        )
                    ).all()
            fresh = []
            if insp.has_table(dispositions_t.name, schema=dispositions_t.schema):
                fresh = list(
                    conn.execute(
                        sa.select(dispositions_t)
                        .where(dispositions_t.c.lidm_status.is_(None))
                        .order_by(dispositions_t.c.row_id)
                    ).mappings()
                )
        if acked:
            rows = [{"warning_id": r.warning_id, "acknowledged_at": text_value(r.acknowledged_at)} for r in acked]
            outcome, _ = self._acks(dept, channel.where, rows, list(range(1, len(rows) + 1)))
            self.result.sources.append(outcome)
        if not fresh:
            return
        source = channel.name_of(channel.dispositions_name)
        keep = [c.name for c in dispositions_t.columns if c.name != "row_id" and not c.name.startswith("lidm_")]
        rows = [{k: _clean(text_value(r[k])) for k in keep} for r in fresh]
        outcome, decisions = self._dispositions(dept, source, rows, [r["row_id"] for r in fresh], [])
        self.result.sources.append(outcome)
        # The department sees the verdict on its own rows; a crash before this re-reads them, recording nothing new.
        verdicts = [
            {
                "_row": d.row_number,
                "_status": d.earlier or d.status,
                "_reason": d.reason,
                "_id": d.disposition_id,
                "_at": self.now,
            }
            for d in decisions
        ]
        t = dispositions_t
        with channel.begin("record the verdicts on the disposition rows") as conn:
            conn.execute(
                sa.update(t)
                .where(t.c.row_id == sa.bindparam("_row"))
                .values(
                    lidm_status=sa.bindparam("_status"),
                    lidm_reason=sa.bindparam("_reason"),
                    lidm_disposition_id=sa.bindparam("_id"),
                    lidm_collected_at=sa.bindparam("_at"),
                ),
                verdicts,
            )

    # ------------------------------------------------------------------------------------------ acks

    def _awaiting_ack(self, dept: str) -> list[str]:
        """Warnings pushed to the department and not yet acknowledged: the only rows worth reading back."""
        w, ws = self.w, warning_state
        query = (
            sa.select(w.c.warning_id)
            .join(ws, ws.c.warning_id == w.c.warning_id)
            .where(
                w.c.target_department == dept,
                ws.c.pushed_at.is_not(None),
                ws.c.acknowledged_at.is_(None),
                w.c.status.in_(_ACKABLE),
            )
        )
        with self.engine.connect() as conn:
            return list(conn.execute(query).scalars())

    def _warnings(self, conn: sa.Connection, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        w, ws = self.w, warning_state
        out: dict[str, dict[str, Any]] = {}
        unique = sorted(set(ids))
        for start in range(0, len(unique), 500):
            query = (
                sa.select(
                    w.c.warning_id,
                    w.c.target_department,
                    w.c.status,
                    w.c.id_number_token,
                    w.c.household_id_token,
                    w.c.district_code,
                    ws.c.acknowledged_at,
                    ws.c.disposition_id,
                )
                .join(ws, ws.c.warning_id == w.c.warning_id)
                .where(w.c.warning_id.in_(unique[start : start + 500]))
            )
            out |= {r.warning_id: dict(r._mapping) for r in conn.execute(query)}
        return out

    def _acks(
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
                elif warn["target_department"] != dept:
                    status = "other_department"
                elif warn["acknowledged_at"] is not None or warn["status"] not in _ACKABLE:
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
                self.result.refusals[f"ack.{code}"] += statuses[code]
                log.info("collect from %s: %d acknowledgement row(s) refused: %s", dept, statuses[code], code)
        return outcome, report

    # ------------------------------------------------------------------------------------------ dispositions

    def _digest(self, values: Sequence[Any]) -> str:
        text = "\x1f".join("\x00" if v is None else text_value(v) for v in values)
        return hashlib.blake2b(text.encode("utf-8"), key=self.row_key, digest_size=32).hexdigest()

    def _dispositions(
        self,
        dept: str,
        source: str,
        rows: list[dict[str, str | None]],
        numbers: list[int],
        malformed: list[dict[str, Any]],
    ) -> tuple[SourceResult, list[_Decision]]:
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
                self.result.refusals[d.code or "refused"] += 1
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
    ) -> list[_Decision]:
        r = result_table
        earlier = {
            (e.row_number, e.row_digest): e
            for e in conn.execute(
                sa.select(r.c.row_number, r.c.row_digest, r.c.status, r.c.reason, r.c.disposition_id).where(
                    r.c.department == dept, r.c.source_name == source
                )
            )
        }
        decided: dict[int, _Decision] = {}

        def seen(i: int, number: int | None, digest: str) -> bool:
            e = earlier.get((number, digest))
            if e is not None:
                decided[i] = _Decision(
                    number, "unchanged", e.disposition_id, digest, e.reason, recorded=False, earlier=e.status
                )
            return e is not None

        def refuse(i: int, did: str, code: str, message: str, wid: str | None = None) -> None:
            decided[i] = _Decision(numbers[i], "refused", did, digests[i], f"[{code}] {message}", code, wid)

        out_of_band: list[_Decision] = []
        for m in malformed:
            digest = self._digest([m.get("text")])
            e = earlier.get((m["row"], digest))
            if e is not None:
                out_of_band.append(_Decision(m["row"], "unchanged", e.disposition_id, digest, e.reason, recorded=False))
            else:
                message = f"row has {m['actual']} fields, the header has {m['expected']}"
                out_of_band.append(
                    _Decision(m["row"], "refused", "-", digest, f"[malformed_row] {message}", "malformed_row")
                )

        names = [f.name for f in self.contract.fields if f.name not in PLATFORM_ISSUED]
        digests = [self._digest([row.get(n) for n in names]) for row in rows]
        warnings = self._warnings(conn, [row.get("warning_id") or "" for row in rows])
        candidates: list[int] = []
        for i, (number, row, digest) in enumerate(zip(numbers, rows, digests, strict=True)):
            if seen(i, number, digest):
                continue
            wid = row.get("warning_id")
            if wid and wid not in warnings:
                # The value is not repeated: a shifted column could put anything there.
                refuse(i, _raw_id(row), "unknown_warning", "no warning with this warning_id was raised")
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
            refuse(i, _raw_id(rows[i]), code, message, wid if wid in warnings else None)
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
                    value = dept
                elif f.name == "district_code" and value is None and warn is not None:
                    value = warn["district_code"]
                cols[f.name].append(value)
        table = pa.table({k: pa.array(v, pa.string()) for k, v in cols.items()})
        return table.append_column(ROW, pa.array(range(len(idx)), pa.int64()))

    def _stored(self, conn: sa.Connection, ids: list[str]) -> dict[str, dict[str, Any]]:
        d = self.d
        out: dict[str, dict[str, Any]] = {}
        unique = sorted(set(ids))
        for start in range(0, len(unique), 500):
            query = sa.select(d.c.disposition_id, d.c._row_digest, d.c.outcome, d.c.warning_id).where(
                d.c.disposition_id.in_(unique[start : start + 500])
            )
            out |= {r.disposition_id: dict(r._mapping) for r in conn.execute(query)}
        return out

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
        decided: dict[int, _Decision],
        batch_id: str,
    ) -> None:
        """The matching rules, in order; the first that fails refuses the row."""
        wid = v["warning_id"]
        warn = warnings[wid]

        def refuse(code: str, message: str) -> None:
            decided[i] = _Decision(number, "refused", did, raw_digest, f"[{code}] {message}", code, wid)

        names = [f.name for f in self.contract.fields if f.name not in PLATFORM_ISSUED]
        digest = self._digest([v[n] for n in names])
        earlier = stored.get(did)
        if v["department"] != dept:
            return refuse(
                "department_mismatch", f"department is {v['department']} but the row came through {dept}'s channel"
            )
        if warn["target_department"] != dept:
            return refuse("other_department", f"warning {wid} is targeted at {warn['target_department']}, not {dept}")
        if earlier is not None and earlier["_row_digest"] == digest:
            note = f"disposition {did} was taken before"
            decided[i] = _Decision(number, "unchanged", did, raw_digest, note, None, wid)
            return None
        if warn["status"] == "closed":
            return refuse("closed", f"warning {wid} was closed (its condition went away); no disposition is taken")
        problem = _inconsistent(v)
        if problem:
            return refuse("inconsistent_outcome", problem)
        if p["id_number_token"] != warn["id_number_token"]:
            return refuse("id_number_mismatch", f"id_number is not the person of warning {wid}")
        if earlier is None and warn["status"] == "disposed":
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
        elif v["outcome"] == "referred" and warn["acknowledged_at"] is None and warn["status"] in _ACKABLE:
            transition(
                conn,
                self.catalog,
                [wid],
                "acknowledged",
                actor=f"department {dept}",
                detail=f"referred to county coordination at {text_value(v['disposed_at'])} ({file})",
                at=self.now,
            )
            warn["acknowledged_at"] = self.now
        note = f"correction of disposition {did}" if earlier is not None else None
        decided[i] = _Decision(number, "applied", did, raw_digest, note, None, wid)
        return None


def _inconsistent(v: dict[str, Any]) -> str | None:
    """Outcome and assistance must agree (the contract's descriptions); a message with no values, or None."""
    outcome = v["outcome"]
    present = {k: v.get(k) not in (None, "") for k in ("assistance_kind", "amount", "granted_on", "reason")}
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


def _raw_id(row: dict[str, str | None]) -> str:
    """A disposition number for a row that did not validate: from its text, so the same row gets the same one."""
    text = f"{row.get('warning_id') or ''}|{row.get('disposed_at') or ''}"
    return "R-" + hashlib.sha256(text.encode("utf-8")).hexdigest()[:30]


def _stated_time(text: str | None) -> str:
    """The department's own time as a timestamp, for an event's detail; anything else is not repeated."""
    try:
        return text_value(datetime.fromisoformat((text or "").replace("/", "-")))
    except ValueError:
        return "an unstated time"


def _clean(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None
