"""One chunk from source shape to central shape: conform, validate, digest, protect, and quarantine rows.

Per-value protection (a keyed token per value, one AEAD per row) is a Python loop, so a big batch spreads its
chunks over forked worker processes while the parent reads the source. Given a sink (the batch's shared stage), a
worker COPYs its rows into the database itself and hands back only counts, held-back rows and digests, in order;
else its rows come back to the parent. Small batches (one chunk) never start a process. A worker dies with the
loading process and holds none of its sockets, so a kill -9 of the loader leaves no orphan process and no open
database session.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import json
import multiprocessing
import os
import signal
import stat
import sys
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lidm.adapter import Adapter
from lidm.central.copyin import CopyInput
from lidm.central.loader import SOURCE_LINE, SOURCE_ROW
from lidm.conform import conform
from lidm.contracts import Contract
from lidm.contracts.model import Classification, Field, LogicalType, Protection
from lidm.errors import LidmError
from lidm.keys import Keyring
from lidm.protect import Protector, mask, seal
from lidm.validate import LINE, ROW, Validated, Validator

DIGEST = 32  # bytes of one row digest
IN_FLIGHT = 2  # chunks queued per worker
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
PARENT_POLL_SECONDS = 1.0  # where the kernel cannot signal a parent's death, a worker looks this often


@dataclass
class Transformed:
    """A chunk ready to load; nothing in it is readable personal data."""

    rows: int
    protected: pa.Table | None  # central columns + _batch_id, _row_digest, _retired_batch, SOURCE_ROW
    quarantine: list[dict[str, Any]]
    reasons: Counter[str] = field(default_factory=Counter)
    digests: bytes = b""  # the row digests in source order: the batch's content digest is their hash
    copy: bytes | None = None  # `protected` already as COPY input, where the writer takes COPY
    newest: Any = None  # the newest record time among the rows that will load (the contract's record_time field)


def encrypt_payload(keyring: Keyring, feed: str, payload: dict[str, Any]) -> str:
    """A quarantined row is kept whole but encrypted: nothing lost, nothing readable without the key."""
    body = json.dumps(payload, ensure_ascii=False, default=str).encode("utf-8")
    return seal(keyring, body, f"quarantine/{feed}".encode())


class ChunkTransform:
    """Everything one chunk needs; built once per batch and inherited (not pickled) by forked workers."""

    def __init__(
        self,
        adapter: Adapter,
        contract: Contract,
        keyring: Keyring,
        *,
        feed: str,
        batch_id: str,
        city_prefix: str,
        timezone: str,
        copy_input: CopyInput | None = None,
    ) -> None:
        self.adapter, self.contract, self.keyring = adapter, contract, keyring
        self.feed, self.batch_id = feed, batch_id
        self.validator = Validator(contract, city_prefix, timezone)
        self.protector = Protector(contract, keyring)
        self.copy_input = copy_input  # render COPY input here, in the worker, rather than in the loading process
        # Keyed row digests (change detection), never plain hashes of personal data.
        self.digest_key = hashlib.blake2b(keyring.token.root_key, digest_size=32, person=b"lidm-row").digest()
        self.locate = locating_columns(contract, adapter)

    def __call__(self, chunk: pa.Table) -> Transformed:
        rows = self.validator.normalize(conform(chunk, self.adapter, self.contract))
        row_digest, raw_digests = self._digests(rows)
        checked = self.validator.validate(rows)
        out = Transformed(chunk.num_rows, pa.table({}), [], digests=raw_digests)
        if len(checked.bad_rows):
            out.quarantine = self._bad_rows(chunk, rows, checked, out.reasons, row_digest)
        good = pa.array(np.isin(np.arange(rows.num_rows), checked.bad_rows, invert=True))
        n = checked.valid.num_rows
        if n and self.contract.record_time is not None:
            out.newest = pc.max(checked.valid[self.contract.record_time]).as_py()
        protected = self.protector.protect(checked.valid)
        for name, col in (
            ("_batch_id", pa.array([self.batch_id] * n, pa.string())),
            ("_row_digest", pc.filter(row_digest, good)),
            ("_retired_batch", pa.nulls(n, pa.string())),
            (SOURCE_ROW, checked.valid[ROW]),
            (SOURCE_LINE, checked.valid[LINE] if LINE in checked.valid.column_names else pa.nulls(n, pa.int64())),
        ):
            protected = protected.append_column(name, col)
        if self.copy_input is None:
            out.protected = protected
        else:
            out.copy = self.copy_input.render(protected)
        return out

    def fingerprint(self, chunk: pa.Table) -> tuple[pa.Table, pa.Array]:
        """What the central database would hold of a chunk, without protecting anything but the key.

        Returns the conformed rows (for bucketing) and a table of `key` (the central key column's value: the token
        where the key is tokenized), `digest` (the keyed row digest) and `valid` (would load rather than be
        quarantined). `lidm reconcile` compares these with the central table; no raw value leaves this process.
        """
        rows = self.validator.normalize(conform(chunk, self.adapter, self.contract))
        row_digest, _raw = self._digests(rows)
        checked = self.validator.validate(rows)
        valid = np.isin(np.arange(rows.num_rows), checked.bad_rows, invert=True)
        key = self.contract.key[0]
        keys = pc.cast(rows[key], pa.string())
        if "token" in self.contract.field(key).protection:
            keys = self.protector.token(keys)
        return rows, pa.table({"key": keys, "digest": row_digest, "valid": pa.array(valid)})

    def _digests(self, table: pa.Table) -> tuple[pa.Array, bytes]:
        text = [pc.cast(table[f], pa.string()) for f in self.contract.field_names]
        joined = pc.binary_join_element_wise(*text, "\x1f", null_handling="replace", null_replacement="\x00")
        key, blake = self.digest_key, hashlib.blake2b
        raw = [blake(v.encode("utf-8"), key=key, digest_size=DIGEST).digest() for v in joined.to_pylist()]
        return pa.array([d.hex() for d in raw], type=pa.string()), b"".join(raw)

    def _bad_rows(
        self,
        chunk: pa.Table,
        rows: pa.Table,
        checked: Validated,
        reasons: Counter[str],
        row_digest: pa.Array,
    ) -> list[dict[str, Any]]:
        key = self.contract.key[0]
        bad = pa.array(checked.bad_rows)
        digests = pc.take(row_digest, bad).to_pylist()
        raw = pc.take(chunk, bad).to_pylist()
        keys = pc.cast(pc.take(rows[key], bad), pa.string())
        tokens = (
            self.protector.token(keys).to_pylist()
            if "token" in self.contract.field(key).protection
            else [None] * len(raw)
        )
        out = []
        for i, idx in enumerate(checked.bad_rows):
            problems = checked.problems[int(idx)]
            reasons[problems[0].code] += 1
            out.append(
                {
                    "row_number": raw[i].pop(ROW),
                    "line_number": raw[i].pop(LINE, None),
                    "locator": locator(self.locate, raw[i]),
                    "field": problems[0].field,
                    "reason": problems[0].code,
                    "message": "; ".join(p.message for p in problems),
                    "problems": json.dumps([{"field": p.field, "code": p.code} for p in problems]),
                    "key_token": tokens[i],
                    "row_digest": digests[i],
                    "payload_kind": "raw_enc",
                    "payload": encrypt_payload(self.keyring, self.feed, raw[i]),
                }
            )
        return out


def locating_columns(contract: Contract, adapter: Adapter) -> list[tuple[str, Field, bool]]:
    """The source columns that name a row in the department's own system: those of the contract's key and record
    time, each with its field and whether it may be shown as it is (else only masked, or not at all)."""
    converters = adapter.converters()
    out = []
    for name in dict.fromkeys((*contract.key, contract.record_time)):
        column = getattr(converters.get(name or ""), "column", None)
        if name is None or column is None:
            continue
        f = contract.field(name)
        clear = Protection.CLEAR in f.protection and f.classification is not Classification.DIRECT_IDENTIFIER
        if clear or Protection.MASK in f.protection or f.classification is Classification.DIRECT_IDENTIFIER:
            out.append((column, f, clear))
    return out


def locator(columns: list[tuple[str, Field, bool]], raw: dict[str, Any]) -> str | None:
    """Where a held-back row is in the department's table, e.g. ``sfzh=4301************** gxsj=2026-11-30 10:22:01``:
    its source key (masked where the contract masks it) and record time, as its own columns hold them. A database
    source's read position is a place in watermark order, which nobody can find in the table itself."""
    lower = None
    parts = []
    for column, f, clear in columns:
        if column in raw:
            value = raw[column]
        else:
            lower = lower or {k.lower(): v for k, v in raw.items() if isinstance(k, str)}
            value = lower.get(column.lower())
        if value is None or value == "":
            continue
        if isinstance(value, str) and f.type is LogicalType.TIMESTAMP:
            with contextlib.suppress(ValueError):  # one form of a time, whichever the driver gave (SQLite: text)
                value = datetime.fromisoformat(value)
        text = str(value)  # a datetime as 2026-11-30 10:22:01, the way the department's tools print it
        if not clear:
            text = mask(f, pa.array([text], pa.string()))[0].as_py()
        parts.append(f"{column}={text}")
    return " ".join(parts)[:200] or None


_WORKER: ChunkTransform | None = None
_SINK: Callable[[bytes], None] | None = None


def _init_worker(fn: ChunkTransform, parent: int, sink: Callable[[bytes], None] | None) -> None:
    global _WORKER, _SINK
    _die_with(parent)
    _release_sockets()
    _WORKER, _SINK = fn, sink


def _pdeathsig() -> bool:
    """Linux: the kernel SIGKILLs this process when the thread that forked it ends (kill -9, OOM kill included).

    That thread is the one running transform_chunks, which shuts the pool down before it returns.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _die_with(parent: int) -> None:
    """A worker ends when the loading process ends, however it ends: an orphan would hold keys and memory forever.

    The pool's pipes cannot tell a worker its parent is gone: every worker inherits their write ends as well, so
    a read never sees end-of-file. Linux signals the death (prctl); elsewhere a daemon thread polls getppid(), which
    needs nothing inherited (a pipe watched for end-of-file would fail the same way the pool's own pipes do).
    """
    if not _pdeathsig():
        threading.Thread(target=_watch_parent, args=(parent,), name="lidm-parent-watch", daemon=True).start()
    if os.getppid() != parent:  # the parent died before the kernel was told to signal its death
        os._exit(1)


def _watch_parent(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(PARENT_POLL_SECONDS)
    os._exit(1)


def _release_sockets() -> None:
    """Let go of every socket inherited from the loading process: its database session, an SFTP or ODBC link.

    A forked worker holds a copy of each descriptor, and the kernel closes a connection only when its last copy
    closes; so while a worker lived, the loader's session outlived it (idle in transaction, locks held). Each socket
    descriptor is pointed at /dev/null instead of closed: the number stays taken, so nothing the worker opens
    later can land on it, and a stray write by an inherited driver object fails instead of reaching the wire.
    The pool itself talks over pipes, which stay.
    """
    for folder in ("/proc/self/fd", "/dev/fd"):
        try:
            fds = [int(name) for name in os.listdir(folder)]
            break
        except (OSError, ValueError):
            continue
    else:
        return
    null = os.open(os.devnull, os.O_RDWR)
    try:
        for fd in fds:
            try:
                if fd != null and stat.S_ISSOCK(os.fstat(fd).st_mode):
                    os.dup2(null, fd, inheritable=False)
            except OSError:
                continue  # closed meanwhile (the listing's own descriptor)
    finally:
        os.close(null)


def _run_in_worker(chunk: pa.Table) -> Transformed:
    assert _WORKER is not None
    out = _WORKER(chunk)
    if _SINK is not None and out.copy is not None:
        _SINK(out.copy)  # staged by this process: the rows never travel back through the pool's pipes
        out.copy = None
    return out


def can_fork() -> bool:
    """Forked workers inherit the keys in memory; where fork does not exist (Windows) chunks run in-process."""
    return "fork" in multiprocessing.get_all_start_methods()


def transform_chunks(
    fn: ChunkTransform, chunks: Iterator[pa.Table], workers: int, sink: Callable[[bytes], None] | None = None
) -> Iterator[Transformed]:
    """Transformed chunks in source order; a batch of more than one chunk is shared by `workers` processes.

    At most IN_FLIGHT chunks per worker are in flight, so memory stays bounded whatever the batch size. `sink`:
    each worker stages its chunk's COPY input with it (on sessions of its own) and returns the chunk without it;
    chunks transformed in this process keep theirs, for the caller to stage.
    """
    it = iter(chunks)
    first = next(it, None)
    if first is None:
        return
    second = next(it, None)  # read ahead: a one-chunk batch never starts a process
    if second is None:
        yield fn(first)
        return
    if workers <= 1 or not can_fork():
        yield fn(first)
        yield fn(second)
        yield from (fn(c) for c in it)
        return
    fork = multiprocessing.get_context("fork")
    pool = ProcessPoolExecutor(workers, mp_context=fork, initializer=_init_worker, initargs=(fn, os.getpid(), sink))
    pending: deque[Future[Transformed]] = deque()
    try:
        pending.extend(pool.submit(_run_in_worker, c) for c in (first, second))
        for chunk in it:
            pending.append(pool.submit(_run_in_worker, chunk))
            if len(pending) >= IN_FLIGHT * workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    except BrokenProcessPool:
        raise LidmError(
            f"feed {fn.feed}: a worker process protecting batch {fn.batch_id} stopped abruptly (killed, or out of "
            "memory); nothing was written and the run can be retried. LIDM_WORKERS=1 keeps the work in the feed's "
            "own process"
        ) from None
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
