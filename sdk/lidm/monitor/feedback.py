"""Take in what departments return through their channels: acknowledgements, then dispositions.

From a folder or SFTP channel: ``inbox/ack_*`` (warning_id, acknowledged_at) and ``inbox/disposition_*`` files,
CSV or XLSX (the platform.disposition fields a department sends: warning_id, department, outcome,
assistance_kind, amount, granted_on, reason, handler, disposed_at, id_number, household_id, district_code, notes;
department and district_code may be left out: the channel and the warning supply them). ``monitor.answers`` reads
them the way an office writes them (encoding, Chinese headers and labels, date forms, the answer workbook). From a
table channel: the ``acknowledged_at`` column of the department's warning table, and the rows of its disposition
table not yet taken (``lidm_status`` empty).

The rows are applied by ``monitor.dispositions``, answers for one warning oldest first (``monitor.ordering``);
each step is one central transaction. Then each file moves to ``inbox/done/`` with a ``.result.json`` (per row:
status, disposition id, reason) for machines, and the department finds ``outbox/result_<file>.csv`` (Chinese
first, ``monitor.results``). A file that cannot be read at all moves to ``inbox/rejected/`` with a
``.reason.txt`` and gets a result file saying why and what to do; the collect then fails (the CLI exits 1, the
Airflow task fails), naming it. A crash between a commit and the move re-reads the file next time, which records
nothing new. A table's rows get their verdict in its ``lidm_*`` columns.
"""

from __future__ import annotations

import fnmatch
import json
import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from lidm import workdays
from lidm.cells import text_value
from lidm.central import db
from lidm.config import Settings
from lidm.contracts.load import ContractCatalog, load_catalog
from lidm.errors import ChannelError, LidmError, RejectedBatch
from lidm.keys import Keyring, load_keyring
from lidm.monitor import results
from lidm.monitor.answers import (
    ACK_COLUMNS,
    IDENTIFYING,
    Answer,
    answer_time,
    contract_columns,
    normalise_row,
    read_answer,
)
from lidm.monitor.channels import (
    DONE,
    INBOX,
    LATER_FIELDS,
    OUTBOX,
    PLATFORM_ISSUED,
    REJECTED,
    FileChannel,
    TableChannel,
    has_channel,
    open_channel,
)
from lidm.monitor.dispositions import Decision, Intake, SourceResult
from lidm.monitor.handover import Policy
from lidm.monitor.lifecycle import WARNING_CONTRACT, city_now
from lidm.monitor.ordering import schedule
from lidm.monitor.push import departments_of, granted_fields, warning_grant
from lidm.monitor.routing import offices_named

log = logging.getLogger("lidm.monitor.feedback")
ACK_PATTERNS, DISPOSITION_PATTERNS = ("ack_*.csv", "ack_*.xlsx"), ("disposition_*.csv", "disposition_*.xlsx")
# Columns a disposition file must have; department and district_code are supplied when left out.
REQUIRED_COLUMNS = ("warning_id", "outcome", "handler", "disposed_at", "id_number")


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

    def refused_files(self) -> list[SourceResult]:
        """Files refused whole: the department must send them again, so the CLI and the Airflow task fail."""
        return [s for s in self.sources if s.status == "rejected"]

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


def collect_dispositions(
    settings: Settings, *, departments: Sequence[str] | None = None, now: datetime | None = None
) -> CollectResult:
    """Take in every department's (or the named ones') acknowledgements and dispositions from its channel."""
    catalog = load_catalog(settings.contracts_dir)
    known = departments_of(catalog)
    named = offices_named(catalog, departments or known, known)
    engine = db.connect(settings)
    try:
        db.ensure_current(engine, settings)
        collector = _Collector(settings, catalog, load_keyring(settings), engine, now or city_now(settings.timezone))
        # An office never pushed to (no channel configured, no folder yet) has nothing to collect.
        targets = [h for h in named if h in known or h in (departments or ()) or has_channel(settings, h)]
        for holder in targets:
            try:
                collector.department(holder)
            except LidmError as exc:
                if len(targets) == 1:
                    raise  # one channel asked (an Airflow task): its own error, retryable or not
                log.warning("collect from %s failed: %s", holder, exc)
                collector.result.failed[holder] = str(exc)
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
        self.reference = {n for f in catalog[WARNING_CONTRACT].fields for n in (f.name, f.business_name) if n}
        self.now = now
        self.result = CollectResult()
        self.intake = Intake(
            catalog,
            keyring,
            engine,
            now,
            city_prefix=settings.city_prefix,
            timezone=settings.timezone,
            refusals=self.result.refusals,
            handovers=Policy(settings.routing_levels, workdays.Calendar(settings.workdays_assume_weekdays_through)),
        )
        self.columns = contract_columns(self.intake.contract, PLATFORM_ISSUED)

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
        acks = [n for n in names if any(fnmatch.fnmatch(n.lower(), p) for p in ACK_PATTERNS)]
        dispositions = [n for n in names if any(fnmatch.fnmatch(n.lower(), p) for p in DISPOSITION_PATTERNS)]
        other = len(names) - len(acks) - len(dispositions)
        if other:
            log.info(
                "collect from %s: %d inbox file(s) are neither %s nor %s; left in place",
                channel.department,
                other,
                " nor ".join(ACK_PATTERNS),
                " nor ".join(DISPOSITION_PATTERNS),
            )
        # Acknowledgements first: a warning acknowledged and disposed in one round goes through both.
        for name in acks:
            answer = self._read(channel, name, "acknowledgements")
            if answer is not None:
                source = channel.name_of(INBOX, name)
                outcome, report = self.intake.acks(channel.department, source, answer.rows, answer.numbers)
                for r in report:
                    r["sheet_row"] = answer.sheet_rows.get(r["row"])
                self._settle(channel, name, outcome, report, results.ack_result(answer, report))
        self._dispositions(channel, dispositions)

    def _read(self, channel: FileChannel, name: str, kind: str) -> Answer | None:
        """The file's rows, or None when it was refused whole (set aside, with a reason and a result file)."""
        source = channel.name_of(INBOX, name)
        data = channel.read(INBOX, name)
        try:
            if kind == "acknowledgements":
                columns, required, identifying = ACK_COLUMNS, ("warning_id",), ()
            else:
                columns, required, identifying = self.columns, REQUIRED_COLUMNS, IDENTIFYING
            answer = read_answer(
                data,
                name=name,
                source=source,
                columns=columns,
                required=required,
                encoding=channel.encoding,
                identifying=identifying,
            )
        except RejectedBatch as exc:
            channel.put(OUTBOX, results.result_name(name), results.refused_file(exc))
            channel.move(INBOX, name, REJECTED)
            channel.put(REJECTED, f"{name}.reason.txt", f"{exc}\n".encode())
            log.warning("collect from %s: %s rejected: %s", channel.department, name, exc)
            self.result.sources.append(SourceResult(channel.department, source, kind, "rejected", reason=str(exc)))
            return None
        # The answer workbook's own reference columns (the warning's name, due date, summary) go unremarked.
        answer.ignored = [c for c in answer.ignored if c not in self.reference]
        return answer

    def _dispositions(self, channel: FileChannel, names: list[str]) -> None:
        """Apply the disposition files in the order of each warning's answers (monitor.ordering), then settle each."""
        dept = channel.department
        read = []
        for name in names:
            answer = self._read(channel, name, "dispositions")
            if answer is not None:
                read.append((channel.arrived(INBOX, name), name, answer))
        read.sort(key=lambda x: (x[0], x[1]))
        steps = schedule([[(r.get("warning_id"), answer_time(r.get("disposed_at"))) for r in a.rows] for *_, a in read])
        taken: dict[int, tuple[SourceResult, list[Decision]]] = {}
        for f, idx in steps + [(f, []) for f in range(len(read)) if not read[f][2].rows]:
            _, name, a = read[f]
            malformed = [] if f in taken else a.malformed  # once per file
            step = self.intake.dispositions(
                dept, channel.name_of(INBOX, name), [a.rows[i] for i in idx], [a.numbers[i] for i in idx], malformed
            )
            taken[f] = _add(taken.get(f), step)
        for f, (_, name, a) in enumerate(read):
            outcome, decisions = taken[f]
            decisions.sort(key=lambda d: d.row_number or 0)
            report = [
                {
                    "row": d.row_number,
                    "sheet_row": a.sheet_rows.get(d.row_number or 0),
                    "status": d.status,
                    "disposition_id": d.disposition_id,
                    "reason": d.reason,
                }
                for d in decisions
            ]
            result = results.disposition_result(self.intake.contract, dept, a, decisions)
            self._settle(channel, name, outcome, report, result, ignored=a.ignored)

    def _settle(
        self,
        channel: FileChannel,
        name: str,
        outcome: SourceResult,
        report: list[dict[str, Any]],
        result: bytes,
        ignored: list[str] | None = None,
    ) -> None:
        """Results first (the department's, then the machines'), then the move: a crash before it re-reads the
        file, which records nothing new and writes the same results again."""
        channel.put(OUTBOX, results.result_name(name), result)
        summary = {k: v for k, v in asdict(outcome).items() if k not in ("department", "source", "status")}
        summary |= {"file": name, "ignored_columns": ignored or [], "results": report}
        channel.put(DONE, f"{name}.result.json", json.dumps(summary, ensure_ascii=False, indent=1).encode("utf-8"))
        channel.move(INBOX, name, DONE)
        self.result.sources.append(outcome)

    def _table(self, channel: TableChannel) -> None:
        dept = channel.department
        grant = warning_grant(self.catalog, dept)
        fields = granted_fields(self.catalog[WARNING_CONTRACT], grant) if grant else []
        warnings_t = channel.warning_table(fields)
        dispositions_t = channel.disposition_table(self.intake.contract)
        waiting = self.intake.awaiting_ack(dept)
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
                # a table laid out before a later field (notes) is read without it
                have = {c["name"].lower() for c in insp.get_columns(dispositions_t.name, schema=dispositions_t.schema)}
                cols = [c for c in dispositions_t.columns if c.name not in LATER_FIELDS or c.name.lower() in have]
                fresh = list(
                    conn.execute(
                        sa.select(*cols).where(dispositions_t.c.lidm_status.is_(None)).order_by(dispositions_t.c.row_id)
                    ).mappings()
                )
        if acked:
            rows = [{"warning_id": r.warning_id, "acknowledged_at": text_value(r.acknowledged_at)} for r in acked]
            outcome, _ = self.intake.acks(dept, channel.where, rows, list(range(1, len(rows) + 1)))
            self.result.sources.append(outcome)
        if not fresh:
            return
        source = channel.name_of(channel.dispositions_name)
        keep = [c.name for c in dispositions_t.columns if c.name != "row_id" and not c.name.startswith("lidm_")]
        rows = [normalise_row({k: _clean(text_value(r[k])) for k in keep if k in r}, self.columns) for r in fresh]
        taken = None  # rows arrive in row_id order; one warning's answers are applied oldest first, as files are
        for _, idx in schedule([[(r.get("warning_id"), answer_time(r.get("disposed_at"))) for r in rows]]):
            step = self.intake.dispositions(dept, source, [rows[i] for i in idx], [fresh[i]["row_id"] for i in idx], [])
            taken = _add(taken, step)
        outcome, decisions = taken or (SourceResult(dept, source, "dispositions", "taken"), [])
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


def _add(
    total: tuple[SourceResult, list[Decision]] | None, step: tuple[SourceResult, list[Decision]]
) -> tuple[SourceResult, list[Decision]]:
    """One source applied in several steps (monitor.ordering) is one result: counts summed, decisions joined."""
    if total is None:
        return step
    for k in ("rows", "applied", "refused", "unchanged"):
        setattr(total[0], k, getattr(total[0], k) + getattr(step[0], k))
    total[1].extend(step[1])
    return total


def _clean(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None
