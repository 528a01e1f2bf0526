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
unsealed tail, which only the chain protects).

Seals stop whoever lacks the keyring, not the loader: it holds the keyring and could re-seal a rewritten
history. Against the loader the layers are: (1) on PostgreSQL it may only INSERT into ``lidm_audit``, and a
trigger refuses UPDATE, DELETE and TRUNCATE from anyone (migration 0012); (2) ``lidm_audit_head`` keeps the
highest seq ever used, so a deleted entry's number is never reused and entries cut off the end show as missing;
(3) ``checkpoint`` records the chain's head (seq, hash, entry count, time) signed with the administrator's
Ed25519 key (LIDM_AUDIT_KEY, never in the keyring) in ``lidm_audit_checkpoint``, which the loader cannot
write; ``verify`` with the public key (LIDM_AUDIT_PUBLIC_KEYS) reports a log that no longer reaches a
checkpoint, or whose entry at a checkpoint's seq has another hash: a truncation or a rewrite before it.

Appends are serialized: PostgreSQL by a transaction-scoped advisory lock, SQLite by its write lock (taken
before the last entry is read). The lock is held until the caller commits, so append at the end of a
transaction. Entries carry counts, ids and tokens, never a personal value.
"""

from __future__ import annotations

import base64
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
from lidm.central.schema import audit_checkpoint, audit_head
from lidm.errors import KeyringError, LidmError
from lidm.keys import AuditKey, Keyring

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

    def as_row(self) -> dict[str, Any]:
        """The entry for `lidm audit show --json`: its detail as an object, its time in UTC, sealed or not."""
        return {
            "seq": self.seq,
            "at": self.at.replace(tzinfo=UTC).isoformat(),
            "actor": self.actor,
            "action": self.action,
            "subject": self.subject,
            "detail": self.data,
            "hash": self.hash,
            "sealed": self.seal is not None,
        }


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
    used = conn.execute(sa.select(audit_head.c.seq).where(audit_head.c.id == 1)).scalar() or 0
    # Above every number used before, even one whose entry was since deleted: the gap then shows the deletion.
    seq, prev = max(last.seq if last is not None else 0, used) + 1, last.hash if last is not None else GENESIS
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


@dataclass(frozen=True)
class Checkpoint:
    """A signed record of the chain's head: entries 1..seq, ``entries`` of them, the last with ``head_hash``."""

    id: int | None
    seq: int
    head_hash: str
    entries: int
    at: datetime  # UTC, naive
    signer: str
    key_id: str
    signature: str

    def message(self) -> bytes:
        """The canonical bytes the administrator's key signs."""
        body = {
            "seq": self.seq,
            "head_hash": self.head_hash,
            "entries": self.entries,
            "at": self.at.replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds"),
            "signer": self.signer,
            "key_id": self.key_id,
        }
        return canonical({"lidm audit checkpoint": body}).encode("utf-8")

    def signed_by(self, public_keys: dict[str, bytes]) -> bool | None:
        """True when a configured key made the signature, False when not; None when its key is not configured."""
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

        if self.key_id not in public_keys:
            return None
        try:
            Ed25519PublicKey.from_public_bytes(public_keys[self.key_id]).verify(
                base64.b64decode(self.signature), self.message()
            )
        except (InvalidSignature, ValueError):
            return False
        return True


@dataclass
class AuditReport:
    """What ``verify`` found: the first broken entry (if any), the head, how far seals and checkpoints reach."""

    entries: int = 0
    head_seq: int = 0
    head_hash: str = GENESIS
    broken_seq: int | None = None  # the first entry that was edited, deleted or moved
    kind: str | None = None  # edited | deleted | chain | seal | checkpoint
    problem: str | None = None
    sealed: int = 0
    sealed_through: int | None = None  # seq of the last entry with a valid seal
    seals_checked: bool = False
    high_water: int = 0  # the highest seq ever appended (lidm_audit_head)
    checkpoints: int = 0  # checkpoints found and compared with the chain
    checkpoint_seq: int | None = None  # seq covered by the newest checkpoint
    checkpoints_signed: bool = False  # every checkpoint's signature verified with a configured public key

    @property
    def ok(self) -> bool:
        return self.broken_seq is None

    @property
    def unsealed_tail(self) -> int:
        """Entries after the last valid seal: only the chain vouches for them."""
        return self.head_seq - (self.sealed_through or 0)

    @property
    def after_checkpoint(self) -> int:
        """Entries after the newest checkpoint: a truncation among them is visible only by the seq high-water mark."""
        return self.head_seq - (self.checkpoint_seq or 0)

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in (*self.__dataclass_fields__, "ok", "unsealed_tail", "after_checkpoint")}


def _optional_rows(engine: sa.Engine, query: sa.Select) -> list[Any]:
    """Rows of a table migration 0012 added; none on a database not yet upgraded."""
    with engine.connect() as conn:
        if not sa.inspect(conn).has_table(query.get_final_froms()[0].name):
            return []
        return list(conn.execute(query))


def checkpoints(engine: sa.Engine) -> list[Checkpoint]:
    """The recorded checkpoints, oldest first."""
    c = audit_checkpoint
    rows = _optional_rows(engine, sa.select(c).order_by(c.c.id))
    return [Checkpoint(**r._mapping) for r in rows]


def verify(
    engine: sa.Engine,
    keyring: Keyring | None = None,
    public_keys: dict[str, bytes] | None = None,
    *,
    pinned: dict[int, str] | None = None,
) -> AuditReport:
    """Recompute the chain (with the keyring, every seal; with the public keys, every checkpoint's signature).

    ``pinned``: heads recorded outside the database (seq -> hash, as `lidm audit checkpoint` prints them), for
    an attacker who can also delete checkpoints (a superuser)."""
    report = AuditReport(seals_checked=keyring is not None)
    expected_seq, prev_hash = 1, GENESIS
    marks = checkpoints(engine)
    at_mark: dict[int, tuple[str, int]] = {}  # checkpointed seq -> (hash found there, entries up to it)
    wanted = {m.seq for m in marks} | set(pinned or ())

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
        if e.seq in wanted:
            at_mark[e.seq] = (e.hash, report.entries)
        expected_seq, prev_hash = e.seq + 1, e.hash
    head = _optional_rows(engine, sa.select(audit_head.c.seq).where(audit_head.c.id == 1))
    report.high_water = max(head[0].seq if head else 0, report.head_seq)
    for m in marks:
        problem = _against(m, at_mark.get(m.seq), public_keys)
        if problem:
            return broken(min(m.seq, report.head_seq + 1), "checkpoint", problem)
    for seq, digest in sorted((pinned or {}).items()):
        if seq not in at_mark:
            return broken(min(seq, report.head_seq + 1), "checkpoint", f"entry {seq}, pinned outside, is missing")
        if at_mark[seq][0] != digest:
            return broken(seq, "checkpoint", f"entry {seq} is not the one pinned outside (another hash): rewritten")
    report.checkpoints = len(marks)
    report.checkpoint_seq = max((m.seq for m in marks), default=None)
    report.checkpoints_signed = bool(marks) and public_keys is not None
    if report.high_water > report.head_seq:
        cut = report.head_seq + 1
        missing = f"{cut}" if cut == report.high_water else f"{cut}-{report.high_water}"
        return broken(
            cut,
            "deleted",
            f"entry {missing} is missing: cut off the end (the log had reached entry {report.high_water})",
        )
    return report


def _against(mark: Checkpoint, found: tuple[str, int] | None, public_keys: dict[str, bytes] | None) -> str | None:
    """What is wrong between one checkpoint and the chain as read; None when they agree."""
    made = f"checkpoint {mark.id} ({mark.at:%Y-%m-%d %H:%M} UTC, by {mark.signer})"
    if public_keys is not None:
        signed = mark.signed_by(public_keys)
        if signed is None:
            return f"{made} is signed with key {mark.key_id}, which LIDM_AUDIT_PUBLIC_KEYS lacks"
        if not signed:
            return f"{made} has a signature key {mark.key_id} did not make: the checkpoint was forged or altered"
    if found is None:
        return f"{made} covers entries 1-{mark.seq}, but entry {mark.seq} is missing: the log was cut"
    digest, count = found
    if digest != mark.head_hash:
        return (
            f"entry {mark.seq} is not the entry {made} signed (another hash): entries up to it were rewritten "
            "and re-chained"
        )
    if count != mark.entries:
        return f"{made} counted {mark.entries} entries through {mark.seq}, the log holds {count}: entries were removed"
    return None


def checkpoint(
    engine: sa.Engine,
    key: AuditKey,
    *,
    signer: str | None = None,
    keyring: Keyring | None = None,
    public_keys: dict[str, bytes] | None = None,
) -> Checkpoint:
    """Verify the chain, then record its head signed with the administrator's key; refused on a broken chain.

    Run by the administrator over the owner's connection (LIDM_ADMIN_URL): the loader can read checkpoints but
    not write them, and does not hold the key. Seals are checked with the keyring, earlier checkpoints' signatures
    with the public keys, when given."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    private = Ed25519PrivateKey.from_private_bytes(key.seed)
    report = verify(engine, keyring, public_keys)
    if not report.ok:
        raise AuditError(
            f"audit log broken at entry {report.broken_seq} ({report.kind}): {report.problem}; not checkpointed"
        )
    at = datetime.now(UTC).replace(tzinfo=None)
    mark = Checkpoint(None, report.head_seq, report.head_hash, report.entries, at, signer or operator(), key.key_id, "")
    mark = Checkpoint(**{**mark.__dict__, "signature": base64.b64encode(private.sign(mark.message())).decode()})
    with engine.begin() as conn:
        values = {k: v for k, v in mark.__dict__.items() if k != "id"}
        new_id = conn.execute(sa.insert(audit_checkpoint).values(**values).returning(audit_checkpoint.c.id)).scalar()
    return Checkpoint(**{**mark.__dict__, "id": new_id})
