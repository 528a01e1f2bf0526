"""The quiet period after a "not eligible" answer: the same rule does not ask about the same person again.

The seed policy asks not to disturb a household again and again. A department's ``not_eligible`` answer
(platform.disposition) to a rule's warning therefore holds back a new warning of that rule for that person for
the rule's ``quiet_after_not_eligible`` period (from the day the platform took the answer), unless the person's
data the rule reads changed since: a threshold raised and lowered back, or a row that merely left a time window,
asks nobody again; a new medical bill, a changed status or a new row does.

A ``data_error`` answer (比对数据有误: the shared data the rule compared was wrong) holds back the same way but with
no time limit: asking again about the same wrong data would only bring the same answer, so the rule asks again
once the person's data it reads changed (the sharing department corrected it), however long that takes.

"Changed" is told by an evidence digest: when a warning is raised, a keyed digest (BLAKE2b under a key derived
from the keyring's token root key) of what the rule reads of the person (``Compiled.evidence``: their rows in
every feed the rule reads, on the columns it reads) is kept in the warning's ``_row_digest``; a held-back
candidate's digest today is compared with the one of the warning that was answered. No key (a keyless run), no
digest: the run cannot show the data unchanged, so it asks again. Every held-back warning is counted
(``RuleCount.suppressed``), never dropped silently.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from lidm.central.schema import dataset_table, warning_state
from lidm.monitor.engine import Compiled

DISPOSITION_CONTRACT = "platform.disposition"
NOT_ELIGIBLE = "not_eligible"
DATA_ERROR = "data_error"
_PERSON = b"lidm-evidence"
_CHUNK = 500


def evidence_key(keyring: Any) -> bytes | None:
    """The key of evidence digests, from the token root key (it survives re-tokenization); None without a keyring."""
    if keyring is None:
        return None
    return hashlib.blake2b(keyring.token.root_key, digest_size=32, person=_PERSON).digest()


def answered(compiled: Compiled, catalog: Any, token: sa.ColumnElement[Any]) -> sa.ColumnElement[bool] | None:
    """SQL: the person (``token``) has a not_eligible answer to this rule within its quiet period, or a data_error
    answer to it."""
    since = _since(compiled)
    ws, d = warning_state, _dispositions(catalog)
    return (
        sa.exists()
        .select_from(ws.join(d, d.c.disposition_id == ws.c.disposition_id))
        .where(ws.c.rule_id == compiled.rule.id, ws.c.subject_token == token, *_answer(d, since))
    )


def hold_back(
    conn: sa.Connection, compiled: Compiled, catalog: Any, tokens: Sequence[str], key: bytes | None
) -> tuple[list[str], dict[str, str]]:
    """Of people the rule flags again within a quiet period: those to ask again (their data changed, or it cannot
    be told), and the digests computed on the way (token -> digest, for the warnings about to be raised)."""
    if key is None:
        return list(tokens), {}
    stored = _answered_digests(conn, compiled, catalog, tokens)
    now = digests(conn, compiled, tokens, key)
    return [t for t in tokens if now[t] != stored.get(t)], now


def to_raise(
    conn: sa.Connection, compiled: Compiled, tokens: sa.Select[Any], key: bytes | None, known: dict[str, str]
) -> dict[str, str]:
    """The evidence digest of each person a warning is about to be raised for (``tokens``: a SELECT of their
    tokens), kept in the warning's _row_digest: ``known`` where hold_back computed it, else one SELECT per feed
    the rule reads for all of them at once. Nothing without a keyring (the warning keeps its run id there)."""
    if key is None:
        return {}
    people = set(conn.execute(tokens).scalars()) - set(known)
    return (digests(conn, compiled, tokens, key, only=people) if people else {}) | known


def digests(
    conn: sa.Connection,
    compiled: Compiled,
    tokens: Sequence[str] | sa.Select[Any],
    key: bytes,
    only: set[str] | None = None,
) -> dict[str, str]:
    """Per person, the keyed digest of what the rule reads of them (one SELECT per feed it reads)."""
    seen: dict[str, list[str]] = {}
    batches: Iterable[Any] = _chunks(list(tokens), _CHUNK) if isinstance(tokens, Sequence) else [tokens]
    for batch in batches:
        for part, query in enumerate(compiled.evidence(batch)):
            for row in conn.execute(query):
                if only is None or row[0] in only:
                    seen.setdefault(row[0], []).append("\x1f".join([str(part), *map(_text, row[1:])]))
    wanted = only if only is not None else (set(tokens) if isinstance(tokens, Sequence) else set(seen))
    return {t: _digest(compiled, seen.get(t, []), key) for t in wanted}


def _digest(compiled: Compiled, rows: list[str], key: bytes) -> str:
    text = "\x1e".join([compiled.rule.id, *sorted(rows)])
    return hashlib.blake2b(text.encode("utf-8"), key=key, digest_size=32, person=_PERSON).hexdigest()


def _text(value: Any) -> str:
    """One value as the digest reads it: the same on SQLite and PostgreSQL, null apart from every text."""
    if value is None:
        return "\x00"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        return format(value.normalize(), "f")
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value)


def _answered_digests(conn: sa.Connection, compiled: Compiled, catalog: Any, tokens: Sequence[str]) -> dict[str, str]:
    """Per person, the evidence digest of the warning their latest not_eligible answer in the period was given to."""
    since = _since(compiled)
    ws, d = warning_state, _dispositions(catalog)
    w = dataset_table(catalog["platform.warning"], sa.MetaData())
    out: dict[str, str] = {}
    for chunk in _chunks(list(tokens), _CHUNK):
        query = (
            sa.select(ws.c.subject_token, w.c._row_digest)
            .select_from(
                ws.join(d, d.c.disposition_id == ws.c.disposition_id).join(w, w.c.warning_id == ws.c.warning_id)
            )
            .where(ws.c.rule_id == compiled.rule.id, ws.c.subject_token.in_(chunk), *_answer(d, since))
            .order_by(ws.c.disposed_at, ws.c.warning_id)
        )
        out |= {token: digest for token, digest in conn.execute(query)}  # the latest answer comes last: it wins
    return out


def _answer(d: sa.Table, since: datetime | None) -> list[sa.ColumnElement[bool]]:
    """A not_eligible answer within the quiet period (none without one), or a data_error answer at any time."""
    quiet = sa.and_(d.c.outcome == NOT_ELIGIBLE, warning_state.c.disposed_at >= since) if since else sa.false()
    return [sa.or_(quiet, d.c.outcome == DATA_ERROR), d.c._retired_batch.is_(None)]


def _since(compiled: Compiled) -> datetime | None:
    """The earliest answer still quiet on the run's day: answered on day D, quiet while the day is before D +
    period."""
    period = compiled.rule.quiet_after_not_eligible
    if period <= timedelta(0):
        return None
    return datetime.combine(compiled.as_of - period + timedelta(days=1), time())


def _dispositions(catalog: Any) -> sa.Table:
    return dataset_table(catalog[DISPOSITION_CONTRACT], sa.MetaData())


def _chunks(items: list[Any], size: int) -> Iterable[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
