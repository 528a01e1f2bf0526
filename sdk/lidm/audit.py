"""The audit log: an append-only, hash-chained record of what the gateway did (loads, grants, pushes, decrypts).

Each entry (seq, at, actor, action, subject, detail, prev_hash, hash) is written inside the transaction of the
action it records, so an entry exists exactly when the action committed. ``hash`` is SHA-256 over the canonical
JSON of the entry including ``prev_hash``, the previous entry's hash (the first entry chains from GENESIS): an
edited entry no longer matches its hash, a deleted one leaves a gap in ``seq``, an edited-and-rehashed or
re-ordered one breaks the next entry's ``prev_hash``.

The chain alone cannot stop someone with write access from rewriting every entry from some point on
consistently. So a writer that holds the keyring also *seals* its entry: ``seal`` = key id + HMAC-SHA256 of the
entry's hash under a key derived from the keyring's sign key. A sealed entry vouches for the whole chain up to
it; ``verify`` with the keyring checks every seal and reports how many entries follow the last one (the
unsealed tail, which only the chain protects). Cutting entries off the end is not visible in the log itself:
compare the head ``verify`` reports with one recorded elsewhere.

Appends are serialized: PostgreSQL by a transaction-scoped advisory lock, SQLite by its write lock (taken
before the last entry is read). The lock is held until the caller commits, so append at the end of a
transaction. Entries carry counts, ids and tokens, never a personal value.
"""

from __future__ import annotations

import getpass
import hashlib
import hmac
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from lidm.central.schema import audit as audit_table
from lidm.errors import KeyringError, LidmError
from lidm.keys import Keyring

GENESIS = hashlib.sha256(b"lidm audit log genesis").hexdigest()
# pg_advisory_xact_lock key of the audit log: the first 8 bytes of sha256("lidm audit"), as a signed bigint.
_LOCK_KEY = int.from_bytes(hashlib.sha256(b"lidm audit").digest()[:8], "big", signed=True)
_SEAL_CONTEXT = b"lidm audit seal"


class AuditError(LidmError):
    """The audit log cannot be written or read."""


@dataclass(frozen=True)
class Entry:
    """One audit entry as stored."""

    seq: int
    at: datetime  # UTC, naive
    actor: str
    action: str
    subject: str
    detail: str  # canonical JSON text, hashed as stored
    prev_hash: str
    hash: str
    seal: str | None = None

    @property
    def data(self) -> dict[str, Any]:
        return json.loads(self.detail)


def canonical(data: Any) -> str:
    """The one JSON form hashed and stored: sorted keys, no spaces, UTF-8 kept."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def entry_hash(seq: int, at: datetime, actor: str, action: str, subject: str, detail: str, prev_hash: str) -> str:
    """SHA-256 of the canonical JSON of an entry and the hash it chains from."""
    body = {
        "seq": seq,
        "at": at.replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds"),
        "actor": actor,
        "action": action,
        "subject": subject,
        "detail": detail,
        "prev_hash": prev_hash,
    }
    return hashlib.sha256(canonical(body).encode("utf-8")).hexdigest()


def _seal_key(keyring: Keyring, kid: str) -> bytes:
    # Derived, so the Ed25519 signing seed is never used as a MAC key directly.
    return hmac.digest(keyring.sign.get(kid), _SEAL_CONTEXT, "sha256")


def seal(keyring: Keyring, digest: str) -> str:
    """Key id and HMAC of an entry's hash with the keyring's active sign key."""
    kid = keyring.sign.active
    return f"{kid}:{hmac.new(_seal_key(keyring, kid), digest.encode('ascii'), 'sha256').hexdigest()}"


def operator() -> str:
    """The operating-system user running the gateway process, for entries made on someone's behalf."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def _lock(conn: sa.Connection) -> None:
    """Serialize appenders until the caller's transaction ends."""
    dialect = conn.dialect.name
    if dialect == "postgresql":
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_KEY})
    elif dialect == "sqlite":
        # A write statement takes SQLite's one write lock (touching no row); other writers wait on busy_timeout.
        conn.execute(sa.update(audit_table).where(sa.false()).values(seq=audit_table.c.seq))


def append(
    conn: sa.Connection,
    *,
    actor: str,
    action: str,
    subject: str,
    detail: dict[str, Any] | None = None,
    keyring: Keyring | None = None,
) -> Entry:
    """Add one entry to the chain inside the caller's transaction; sealed when a keyring is given."""
    _lock(conn)
    a = audit_table
    query = sa.select(a.c.seq, a.c.hash).order_by(a.c.seq.desc()).limit(1)
    if conn.dialect.name not in ("postgresql", "sqlite"):
        query = query.with_for_update()  # elsewhere: lock the last entry; two first entries collide on the key
    last = conn.execute(query).first()
    seq, prev = (last.seq + 1, last.hash) if last is not None else (1, GENESIS)
    at = datetime.now(UTC).replace(tzinfo=None)
    text = canonical(detail or {})
    digest = entry_hash(seq, at, actor, action, subject, text, prev)
    entry = Entry(seq, at, actor, action, subject, text, prev, digest, seal(keyring, digest) if keyring else None)
    conn.execute(
        sa.insert(a).values(
            seq=seq,
            at=at,
            actor=actor[:200],
            action=action,
            subject=subject[:300],
            detail=text,
            prev_hash=prev,
            hash=digest,
            seal=entry.seal,
        )
    )
    return entry


def entries(engine: sa.Engine, *, last: int | None = None, action: str | None = None) -> list[Entry]:
    """Entries in order (the last N, or those of one action)."""
    a = audit_table
    query = sa.select(a)
    if action:
        query = query.where(a.c.action == action)
    if last:
        query = query.order_by(a.c.seq.desc()).limit(last)
    with engine.connect() as conn:
        rows = [_entry(r) for r in conn.execute(query.order_by(a.c.seq))]
    return sorted(rows, key=lambda e: e.seq)


def _entry(row: Any) -> Entry:
    m = row._mapping
    return Entry(
        m["seq"], m["at"], m["actor"], m["action"], m["subject"], m["detail"], m["prev_hash"], m["hash"], m["seal"]
    )


def _stream(engine: sa.Engine) -> Iterator[Entry]:
    with engine.connect() as conn:
        result = conn.execution_options(yield_per=2000).execute(sa.select(audit_table).order_by(audit_table.c.seq))
        for row in result:
            yield _entry(row)


@dataclass
class AuditReport:
    """What ``verify`` found: the first broken entry (if any), the head, and how far seals reach."""

    entries: int = 0
    head_seq: int = 0
    head_hash: str = GENESIS
    broken_seq: int | None = None  # the first entry that was edited, deleted or moved
    kind: str | None = None  # edited | deleted | chain | seal
    problem: str | None = None
    sealed: int = 0
    sealed_through: int | None = None  # seq of the last entry with a valid seal
    seals_checked: bool = False

    @property
    def ok(self) -> bool:
        return self.broken_seq is None

    @property
    def unsealed_tail(self) -> int:
        """Entries after the last valid seal: only the chain vouches for them."""
        return self.head_seq - (self.sealed_through or 0)

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in (*self.__dataclass_fields__, "ok", "unsealed_tail")}


def verify(engine: sa.Engine, keyring: Keyring | None = None) -> AuditReport:
    """Recompute the chain (and, with the keyring, every seal); names the first entry that does not hold."""
    report = AuditReport(seals_checked=keyring is not None)
    expected_seq, prev_hash = 1, GENESIS

    def broken(seq: int, kind: str, problem: str) -> AuditReport:
        report.broken_seq, report.kind, report.problem = seq, kind, problem
        return report

    for e in _stream(engine):
        if e.seq != expected_seq:
            if e.seq > expected_seq:
                missing = f"{expected_seq}" if e.seq == expected_seq + 1 else f"{expected_seq}-{e.seq - 1}"
                return broken(expected_seq, "deleted", f"entry {missing} is missing: deleted (seq jumps to {e.seq})")
            return broken(e.seq, "chain", f"entry {e.seq} is out of order (expected {expected_seq})")
        if entry_hash(e.seq, e.at, e.actor, e.action, e.subject, e.detail, e.prev_hash) != e.hash:
            return broken(
                e.seq, "edited", f"entry {e.seq} ({e.action} {e.subject}) was edited: it does not match its hash"
            )
        if e.prev_hash != prev_hash:
            before = e.seq - 1
            what = (
                f"entry {before} was edited and re-hashed, or entries were re-ordered" if before else "it was altered"
            )
            return broken(
                max(before, 1), "chain", f"entry {e.seq} does not chain from entry {before or 'genesis'}: {what}"
            )
        if keyring is not None and e.seal is not None:
            kid, _, mac = e.seal.partition(":")
            try:
                good = hmac.compare_digest(
                    mac, hmac.new(_seal_key(keyring, kid), e.hash.encode(), "sha256").hexdigest()
                )
            except KeyringError:
                return broken(e.seq, "seal", f"entry {e.seq} is sealed with key {kid}, which this keyring lacks")
            if not good:
                return broken(
                    e.seq, "seal", f"entry {e.seq} has a seal this keyring did not make: the chain was rewritten"
                )
            report.sealed += 1
            report.sealed_through = e.seq
        report.entries += 1
        report.head_seq, report.head_hash = e.seq, e.hash
        expected_seq, prev_hash = e.seq + 1, e.hash
    return report
