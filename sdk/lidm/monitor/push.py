"""Push new warnings to the offices that must act, each seeing only what its grant allows.

A warning is held by one office (``target_consumer``, lidm.monitor.routing): the city bureau of its department, a
county bureau or a street office, as its rule's level and the person's district and street say. Each office has
its own channel (``LIDM_CHANNELS[<office id>]``, else ``home/channels/<office id>``); "department" below means
that office. A push for a department serves all its offices, city bureau first. For each office: the warnings it
holds that were never pushed (pushed_at empty) and are raised or overdue. Each row carries only the fields of the
department's grant on platform.warning, at the grant's level (clear: the clear column or the field opened from
``_sealed``; masked: ``_masked``; token: the department's pseudonym
of ``_token``, as in its view). A table channel gets the rows upserted by warning_id in one transaction. A folder
or SFTP channel gets, in ``outbox/``, per push (``<stem>`` = ``warnings_<department>_<YYYYmmddTHHMMSS>_<push8>``):

- ``<stem>.csv``: for systems, UTF-8 with BOM, header = contract field names, values as codes;
- ``<stem>.zh.csv``: the same warnings for people (lidm.monitor.readable): Chinese headers and labels, the due
  date in words;
- ``<stem>.answer.xlsx``: the answer workbook (lidm.monitor.workbook): sheets 答复 (one row per warning to fill
  in), 说明 (instructions) and 预警明细 (the warnings);
- ``<stem>.answer.csv``: the same answer template for systems (header = disposition field names);
- ``<stem>.manifest.json`` last, unchanged: rows and sha256 of ``<stem>.csv``. A file without its manifest is
  still being delivered; a reader takes the file the manifest names (``file``), never every ``*.csv``.

Every file is written atomically and the names sort together. Then, in one central transaction, the push is
recorded in ``lidm_push`` and the warnings move to pushed.

The same push tells the department of its warnings that closed or went overdue since (lidm.monitor.notices):
a folder channel gets ``notices_<department>_<YYYYmmddTHHMMSS>_<push8>.csv`` (warning_id, status, changed_at,
reason_code, reason_zh, reason, referred) and ``….zh.csv`` for people, no manifest (a reader pairing a ``.csv``
with its ``.manifest.json`` must not take notices for warnings); a table channel gets those warning rows
re-upserted with their new status and, where the table has them, ``status_reason_code`` and ``status_reason``.
Each notice is recorded as a warning event in the same central transaction and counted in ``PushResult.notices``.

Delivery is at-least-once, keyed by warning_id. The file (or the department's commit) comes first and the
central commit second: a crash in between leaves the warnings unpushed (and the notices unsent), so the next
push sends them again in new files (a table channel upserts them again). A receiver therefore treats warning_id
as the key and a second copy as a replacement. The other order could lose warnings (marked pushed, never
delivered). Two push processes running at once for one department can likewise send a warning twice; Airflow
runs one at a time.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from cryptography.exceptions import InvalidTag

from lidm.cells import csv_cell
from lidm.central import audit, db, release
from lidm.central.schema import push as push_table
from lidm.central.schema import warning_state
from lidm.config import Settings
from lidm.contracts.load import ContractCatalog, load_catalog
from lidm.contracts.model import SEALED, Contract, Field, Grant, GrantLevel, Protection
from lidm.errors import ConfigError, KeyringError, LidmError
from lidm.keys import load_keyring
from lidm.monitor.channels import INBOX, OUTBOX, REASON_COLUMNS, ChannelError, FileChannel, TableChannel, open_channel
from lidm.monitor.lifecycle import WARNING_CONTRACT, city_now, transition, warning_table
from lidm.monitor.notices import NOTICE_STATUSES, Notice, due_notices, notice_files, record_sent
from lidm.monitor.routing import holder_department, offices_named
from lidm.monitor.workbook import READABLE_SUFFIX, files_for_people
from lidm.protect import Protector

log = logging.getLogger("lidm.monitor.push")
PUSHABLE = ("raised", "overdue")
MANIFEST_SUFFIX = ".manifest.json"


class PushFailed(ChannelError):
    """Some departments could not be pushed to; the others were. ``results`` has every department's result."""

    def __init__(self, results: list[PushResult], failures: list[tuple[str, LidmError]]) -> None:
        self.results = results
        super().__init__("; ".join(f"push to {d} failed: {exc}" for d, exc in failures))


@dataclass
class PushResult:
    """One department's push: counts and names only, safe for logs and XCom."""

    department: str
    status: str  # pushed (warnings or notices) | nothing | no_grant | failed
    channel: str | None = None  # folder | sftp | table
    target: str | None = None  # file or table, never a credential
    push_id: str | None = None
    warnings: int = 0
    fields: dict[str, str] = field(default_factory=dict)  # field -> level sent
    reason: str | None = None
    notices: int = 0  # closures and overdue notices sent
    notice_target: str | None = None  # the notice file, or the table the rows were re-upserted in
    consumer: str | None = None  # the office pushed to: the city department, a county bureau or a street office

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def departments_of(catalog: ContractCatalog) -> list[str]:
    """Departments a warning can target: the warning contract's target_department codes."""
    return list(catalog[WARNING_CONTRACT].field("target_department").enum or ())


def warning_grant(catalog: ContractCatalog, department: str) -> Grant | None:
    """The department's grant on platform.warning: its own grant first, else one through a group."""
    contract = catalog[WARNING_CONTRACT]
    direct = [g for g in contract.grants if g.consumer == department]
    if direct:
        return direct[0]
    if catalog.consumers is None or department not in catalog.consumers.members:
        return None
    via = [g for c, g in catalog.grants_for(department) if c.id == contract.id]
    return via[0] if via else None


def granted_fields(contract: Contract, grant: Grant) -> list[tuple[Field, GrantLevel]]:
    """The fields a grant sends, in contract order, each at its level; refuses a level the field cannot give."""
    out = []
    for f in contract.fields:
        if f.name not in grant.fields:
            continue
        level = GrantLevel(grant.fields[f.name])
        need = {
            GrantLevel.TOKEN: (Protection.TOKEN,),
            GrantLevel.MASKED: (Protection.MASK,),
            GrantLevel.CLEAR: (Protection.CLEAR, Protection.ENCRYPT),
        }[level]
        if not any(p in f.protection for p in need):
            raise ConfigError(
                f"{contract.id}: grant to {grant.consumer} gives {f.name} {level.value}, but the field is stored "
                f"as {', '.join(p.value for p in f.protection)}; run `lidm contracts lint`"
            )
        out.append((f, level))
    return out


def push_warnings(
    settings: Settings, *, departments: Sequence[str] | None = None, now: datetime | None = None
) -> list[PushResult]:
    """Send every department (or those named) its new warnings through its channel; one result per department."""
    catalog = load_catalog(settings.contracts_dir)
    known = departments_of(catalog)
    targets = offices_named(catalog, departments or known, known)
    now = now or city_now(settings.timezone)
    keyring = load_keyring(settings)
    engine = db.connect(settings)
    try:
        db.ensure_current(engine, settings)
        pusher = _Pusher(settings, catalog, Protector(catalog[WARNING_CONTRACT], keyring), engine, now)
        results: list[PushResult] = []
        failures: list[tuple[str, LidmError]] = []
        for holder in targets:
            department = holder_department(catalog, holder)
            try:
                result = pusher.push(holder)
            except LidmError as exc:
                log.warning("push to %s failed, nothing recorded for it: %s", holder, exc)
                failures.append((holder, exc))
                results.append(PushResult(department, "failed", reason=str(exc), consumer=holder))
                continue
            # An office below the city bureau with nothing to send is left out unless named: 150 lines of "nothing"
            # would say less than the few that matter.
            if result.status != "nothing" or holder == department or holder in (departments or ()):
                results.append(result)
        if len(failures) == 1 and len(results) == 1:
            raise failures[0][1]  # one channel asked (a test, a one-office deployment): its own error, retryable or not
        if failures:
            raise PushFailed(results, failures)
        return results
    finally:
        engine.dispose()


@dataclass
class _Pusher:
    settings: Settings
    catalog: ContractCatalog
    protector: Protector
    engine: sa.Engine
    now: datetime
    _rule_subjects: dict[str, str] | None = None

    def push(self, holder: str) -> PushResult:
        department = holder_department(self.catalog, holder)
        contract = self.catalog[WARNING_CONTRACT]
        grant = warning_grant(self.catalog, holder)
        if grant is None:
            pending = self._pending_count(holder)
            reason = f"no grant to {holder} on {WARNING_CONTRACT}; {pending} warning(s) wait" if pending else None
            if pending:
                log.warning("push to %s: %s", holder, reason)
            return PushResult(department, "no_grant" if pending else "nothing", reason=reason, consumer=holder)
        fields = granted_fields(contract, grant)
        levels = {f.name: level.value for f, level in fields}
        rows = self._pending(holder)
        # A department whose grant hides the status was never shown one: it is not told of changes either.
        notices = due_notices(self.engine, self.catalog, holder) if "status" in levels else []
        if not rows and not notices:
            return PushResult(department, "nothing", fields=levels, consumer=holder)
        push_id = str(uuid.uuid4())
        # A token leaves as the department's pseudonym, the one its view of the warnings holds (lidm.central.release).
        keys = {
            f.name: release.pseudonym_key(
                self.protector.keyring, holder, release.LINKABLE if f.name in grant.linkable else contract.id
            )
            for f, level in fields
            if level is GrantLevel.TOKEN
        }
        records = [self._record(r, fields, keys) for r in rows]
        header = [f.name for f, _ in fields]
        body = warnings_csv(header, records)
        digest = hashlib.sha256(body).hexdigest()
        target = notice_target = None
        with open_channel(self.settings, holder) as channel:
            if isinstance(channel, TableChannel):
                if rows:
                    target = self._to_table(channel, fields, records, push_id)
                if notices:
                    notice_target = self._notices_to_table(channel, fields, keys, notices)
            else:
                if rows:
                    target = self._to_folder(channel, holder, fields, records, body, digest, push_id, levels)
                if notices:
                    notice_target = self._notices_to_folder(channel, holder, push_id, notices, levels)
        with self.engine.begin() as conn:
            if rows:
                self._record_push(conn, holder, channel.kind, target, push_id, digest, levels, rows)
            if notices:
                record_sent(conn, notices, push_id=push_id, department=holder, channel=channel.kind, at=self.now)
                kinds = {s: sum(1 for n in notices if n.status == s) for s in NOTICE_STATUSES}
                audit.append(
                    conn,
                    actor="push",
                    action="warnings.notify",
                    subject=push_id,
                    detail={
                        "department": department,
                        "consumer": holder,
                        "channel": channel.kind,
                        "target": notice_target,
                    }
                    | kinds,
                    keyring=self.protector.keyring,
                )
        if notices:
            log.info("push %s: %d notice(s) to %s via %s", push_id, len(notices), holder, channel.kind)
        result = PushResult(department, "pushed", channel.kind, target, push_id, len(rows), levels, consumer=holder)
        result.notices, result.notice_target = len(notices), notice_target
        return result

    def _record_push(
        self,
        conn: sa.Connection,
        department: str,
        kind: str,
        target: str | None,
        push_id: str,
        digest: str,
        levels: dict[str, str],
        rows: list[sa.RowMapping],
    ) -> None:
        """The central record of a push of warnings: lidm_push, the warnings pushed, the audit entry."""
        ids = [r["warning_id"] for r in rows]
        conn.execute(
            sa.insert(push_table).values(
                push_id=push_id,
                department=department,
                channel=kind,
                target=target,
                warnings=len(rows),
                content_digest=digest,
                fields=json.dumps(levels),
                pushed_at=self.now,
            )
        )
        transition(
            conn,
            self.catalog,
            ids,
            "pushed",
            actor=f"push {push_id}",
            detail=f"to {department} via {kind}",
            at=self.now,
            extra={"push_id": push_id},
        )
        audit.append(
            conn,
            actor="push",
            action="warnings.push",
            subject=push_id,
            detail={
                "department": department,
                "channel": kind,
                "target": target,
                "warnings": len(rows),
                "content_digest": digest,
                "fields": levels,
            },
            keyring=self.protector.keyring,
        )
        log.info("push %s: %d warning(s) to %s via %s (%s)", push_id, len(rows), department, kind, target)

    def _where_pending(self, w: sa.Table, department: str) -> sa.ColumnElement[bool]:
        return sa.and_(w.c.target_consumer == department, warning_state.c.pushed_at.is_(None), w.c.status.in_(PUSHABLE))

    def _pending(self, department: str) -> list[sa.RowMapping]:
        return self._warnings(lambda w: self._where_pending(w, department))

    def _warnings(self, where: Any) -> list[sa.RowMapping]:
        """Warning rows (with the contract their ciphertexts are bound to) that ``where(table)`` picks."""
        w = warning_table(self.catalog)
        query = (
            sa.select(w, warning_state.c.sealed_by)
            .join(warning_state, warning_state.c.warning_id == w.c.warning_id)
            .where(where(w))
            .order_by(w.c.warning_id)
        )
        with self.engine.connect() as conn:
            return list(conn.execute(query).mappings())

    def _pending_count(self, department: str) -> int:
        w = warning_table(self.catalog)
        query = (
            sa.select(sa.func.count())
            .select_from(w.join(warning_state, warning_state.c.warning_id == w.c.warning_id))
            .where(self._where_pending(w, department))
        )
        with self.engine.connect() as conn:
            return conn.execute(query).scalar_one()

    def _record(
        self, row: sa.RowMapping, fields: list[tuple[Field, GrantLevel]], keys: dict[str, bytes]
    ) -> dict[str, Any]:
        """One warning as the department receives it: granted fields at their level (tokens as its pseudonyms),
        status as after the push."""
        out: dict[str, Any] = {}
        for f, level in fields:
            if f.name == "status":
                value: Any = "pushed" if row["status"] == "raised" else row["status"]
            elif f.name == "updated_at":
                value = self.now
            elif level is GrantLevel.TOKEN:
                value = release.pseudonym(keys[f.name], row[f"{f.name}_token"])
            elif level is GrantLevel.MASKED:
                value = row[f"{f.name}_masked"]
            elif Protection.CLEAR in f.protection:
                value = row[f.name]
            else:
                value = self._decrypt(row, f)
            out[f.name] = value
        return out

    def _decrypt(self, row: sa.RowMapping, f: Field) -> str | None:
        """One granted field of the sealed row. A warning copies its subject row's ``_sealed``, which stays bound to
        the subject feed's contract (see Protector.seal); the warning's state names that contract (``sealed_by``)."""
        sealed = row[SEALED]
        if sealed is None:
            return None
        contract_id = row["sealed_by"] or self._subjects().get(row["rule_id"]) or WARNING_CONTRACT
        try:
            return Protector(self.catalog[contract_id], self.protector.keyring).decrypt(sealed, f.name)
        except (InvalidTag, ValueError, KeyError, KeyringError):
            raise KeyringError(
                f"warning {row['warning_id']}: {f.name} cannot be opened with this keyring (key fingerprint "
                f"{bytes(sealed[1:5]).hex()}, sealed by {contract_id}); the keyring must hold the key the warning "
                "was sealed with"
            ) from None

    def _subjects(self) -> dict[str, str]:
        """Subject feed per rule: the binding of warnings raised before their state named it."""
        if self._rule_subjects is None:
            from lidm.monitor.rules import load_rules

            try:
                rules = load_rules(self.settings.rules_dir, catalog=self.catalog, params=self.settings.rule_params)
                self._rule_subjects = {r.id: r.subject.feed for r in rules}
            except LidmError:
                self._rule_subjects = {}
        return self._rule_subjects

    def _to_folder(
        self,
        channel: FileChannel,
        department: str,
        fields: list[tuple[Field, GrantLevel]],
        records: list[dict[str, Any]],
        body: bytes,
        digest: str,
        push_id: str,
        levels: dict[str, str],
    ) -> str:
        channel.prepare()
        stem = f"warnings_{department}_{self.now:%Y%m%dT%H%M%S}_{push_id[:8]}"
        name = f"{stem}.csv"
        target = channel.put(OUTBOX, name, body)
        # For people, beside the machine file: the warnings in Chinese, and what to answer with.
        inbox = channel.name_of(INBOX, "").rstrip("/")
        for suffix, data in files_for_people(self.catalog, fields, records, self.now.date(), inbox=inbox).items():
            channel.put(OUTBOX, stem + suffix, data)
        manifest = {
            "push_id": push_id,
            "department": department,
            "contract": WARNING_CONTRACT,
            "contract_version": self.catalog[WARNING_CONTRACT].version,
            "file": name,
            "rows": len(records),
            "sha256": digest,
            "encoding": "utf-8-sig",
            "fields": levels,
            "key": "warning_id",
            "pushed_at": self.now.isoformat(sep=" "),
        }
        # Written after the data: a file without its manifest is still being delivered.
        channel.put(OUTBOX, stem + MANIFEST_SUFFIX, json.dumps(manifest, indent=2).encode())
        return target

    def _notices_to_folder(
        self, channel: FileChannel, department: str, push_id: str, notices: list[Notice], levels: dict[str, str]
    ) -> str:
        """The notice files: for systems (codes), then for people (Chinese); each atomic, no manifest."""
        channel.prepare()
        stem = f"notices_{department}_{self.now:%Y%m%dT%H%M%S}_{push_id[:8]}"
        machine, readable = notice_files(notices, self.catalog, self.now.date(), list(levels))
        target = channel.put(OUTBOX, f"{stem}.csv", machine)
        channel.put(OUTBOX, stem + READABLE_SUFFIX, readable)
        return target

    def _notices_to_table(
        self,
        channel: TableChannel,
        fields: list[tuple[Field, GrantLevel]],
        keys: dict[str, bytes],
        notices: list[Notice],
    ) -> str:
        """Re-upsert the warning rows with their new status (and the reason, where the table has its columns);
        push_id, pushed_at and the department's acknowledged_at are left as they are."""
        by_id = {n.warning_id: n for n in notices}
        rows = self._warnings(lambda w: w.c.warning_id.in_(list(by_id)))
        table = channel.warning_table(fields)
        with channel.begin("upsert the closed and overdue warnings") as conn:
            channel.ensure(conn, table)
            have = {c["name"].lower() for c in sa.inspect(conn).get_columns(table.name, schema=table.schema)}
            upserts = []
            for r in rows:
                record = self._record(r, fields, keys)
                n = by_id[r["warning_id"]]
                reason = dict(zip(REASON_COLUMNS, (n.reason_code, n.reason_zh), strict=True))
                upserts.append(record | {k: v for k, v in reason.items() if k in have})
            upsert(conn, table, upserts, key="warning_id")
        return channel.where

    def _to_table(
        self, channel: TableChannel, fields: list[tuple[Field, GrantLevel]], records: list[dict[str, Any]], push_id: str
    ) -> str:
        table = channel.warning_table(fields)
        rows = [r | {"push_id": push_id, "pushed_at": self.now} for r in records]
        with channel.begin("upsert the pushed warnings") as conn:
            channel.ensure(conn, table)
            upsert(conn, table, rows, key="warning_id")
            channel.ensure(conn, channel.disposition_table(self.catalog["platform.disposition"]))
        return channel.where


def upsert(conn: sa.Connection, table: sa.Table, rows: list[dict[str, Any]], *, key: str) -> None:
    """Insert new keys, update existing ones (only the columns given): portable to any SQLAlchemy database."""
    if not rows:
        return
    existing: set[Any] = set()
    keys = [r[key] for r in rows]
    for start in range(0, len(keys), 500):
        chunk = keys[start : start + 500]
        existing |= set(conn.execute(sa.select(table.c[key]).where(table.c[key].in_(chunk))).scalars())
    new = [r for r in rows if r[key] not in existing]
    old = [r for r in rows if r[key] in existing]
    if new:
        conn.execute(sa.insert(table), new)
    if old:
        cols = [c for c in old[0] if c != key]
        stmt = (
            sa.update(table)
            .where(table.c[key] == sa.bindparam("_key"))
            .values({c: sa.bindparam(f"_v_{c}") for c in cols})
        )
        conn.execute(stmt, [{"_key": r[key]} | {f"_v_{c}": r[c] for c in cols} for r in old])


def warnings_csv(header: list[str], records: list[dict[str, Any]]) -> bytes:
    """A channel CSV: UTF-8 with BOM (office tools open it right), CRLF lines, header = contract field names."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow(header)
    for r in records:
        writer.writerow([csv_cell(r.get(h)) for h in header])
    return ("\ufeff" + buf.getvalue()).encode("utf-8")
