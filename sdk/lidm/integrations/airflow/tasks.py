"""The task callables: what each task of the feed and monitoring DAGs does, with its connections from Airflow.

- `run_feed_task`, `run_reconcile_task`: a feed's load and its reconciliation, the source from the feed's
  Airflow connection.
- `monitor_task`, `happiness_task`, `needs_task`, `push_task`, `collect_task`, `purge_task`: the monitoring loop and
  housekeeping; a department's channel comes from the Airflow connection `lidm_channel_<department>` when one
  exists (sftp, postgres or odbc; a database connection names its table in extra `table`), else from
  LIDM_CHANNELS, else the folder under LIDM_HOME.

Tasks return counts only (plain JSON, safe for XCom) and keep no state outside the central database, so a
retried task redoes nothing that was done. A rejected batch, a configuration error or an unknown/changed SFTP
host key raises AirflowFailException (no retry: trying again cannot fix it); an unreachable source raises
SourceError and is retried.
"""

from __future__ import annotations

import json
import logging
import tempfile
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

from lidm.errors import LidmError, retryable
from lidm.integrations.airflow.hooks import Scratch, connection_url, settings_with_channel

log = logging.getLogger("lidm.airflow")

# An error that another attempt cannot fix (its class says so: lidm.errors.retryable) fails the task at once;
# the others propagate and Airflow retries them.


# --------------------------------------------------------------------------- the feed tasks


def _with_source(feed: str, action: Any) -> Any:
    """Call `action(adapter, settings, connections=...)` with the feed's source from its Airflow connection; a
    fault another attempt cannot fix fails the task at once."""
    from airflow.sdk.exceptions import AirflowFailException

    from lidm.config import get_settings
    from lidm.registry import get_adapter

    try:
        adapter = get_adapter(feed)
        name = adapter.source.connection
        with tempfile.TemporaryDirectory(prefix="lidm-conn-") as folder:
            url = connection_url(name, Scratch(Path(folder)))
            return action(adapter, get_settings(), connections={name: url})
    except LidmError as exc:
        if retryable(exc):
            raise
        raise AirflowFailException(f"feed {feed}: {type(exc).__name__}: {exc}") from None


def run_feed_task(feed: str) -> list[dict[str, Any]]:
    """Run every pending batch of `feed` with its source from the Airflow connection of the same id.

    Returns the batches' counts (safe for XCom). Fails without retry on a rejected batch or a configuration
    fault; lets SourceError (an unreachable source) propagate so Airflow retries.
    """
    from airflow.sdk.exceptions import AirflowFailException

    from lidm.pipeline import run_feed

    results = _with_source(feed, run_feed)
    # Plain JSON for XCom: tuples (top_reasons) would otherwise be stored as serde-wrapped objects.
    counts = [json.loads(json.dumps(r.as_dict())) for r in results]
    for c in counts:
        log.info(
            "feed %s %s: %s (extracted %d, loaded %d, quarantined %d)",
            feed,
            c["source"],
            c["status"],
            c["extracted"],
            c["loaded"],
            c["quarantined"],
        )
    if not counts:
        log.info("feed %s: nothing pending", feed)
    rejected = [r for r in results if r.status == "rejected"]
    if rejected:
        reasons = "; ".join(f"{r.source}: {r.reason}" for r in rejected)
        raise AirflowFailException(f"feed {feed}: {len(rejected)} of {len(results)} batch(es) rejected: {reasons}")
    return counts


def run_reconcile_task(feed: str) -> dict[str, Any]:
    """Reconcile a database feed after its load; a mismatch fails the task without retry, naming the days or key
    ranges (the result is kept for the Feeds page and `lidm status` either way)."""
    from airflow.sdk.exceptions import AirflowFailException

    from lidm.reconcile import reconcile

    result = _with_source(feed, reconcile)
    summary = json.loads(json.dumps(result.as_dict(), default=str))
    if result.status != "ok":
        where = ", ".join(
            f"{b.bucket} ({b.missing} missing, {b.extra} extra, {b.changed} changed)" for b in result.buckets[:5]
        )
        raise AirflowFailException(
            f"feed {feed}: the central table does not match the source: {result.missing} missing, {result.extra} "
            f"extra, {result.changed} changed rows; where: {where}. Re-run the feed, or recall and reload"
        )
    log.info("feed %s: reconciled, %d source rows accounted for", feed, result.source_rows)
    return summary


# --------------------------------------------------------------------------- the monitoring tasks


def _plain(value: Any) -> Any:
    """Counts as plain JSON for XCom."""
    if is_dataclass(value) and not isinstance(value, type):
        value = value.as_dict() if hasattr(value, "as_dict") else asdict(value)
    elif isinstance(value, list):
        value = [_plain(v) for v in value]
    return json.loads(json.dumps(value, default=str))


def _fail_fast(what: str, exc: Exception) -> None:
    from airflow.sdk.exceptions import AirflowFailException

    raise AirflowFailException(f"{what}: {type(exc).__name__}: {exc}") from None


def monitor_task() -> dict[str, Any]:
    """Evaluate every rule for today; returns per-rule counts."""
    from lidm.config import get_settings
    from lidm.monitor import monitor

    try:
        result = monitor(get_settings())
    except LidmError as exc:
        if retryable(exc):
            raise
        _fail_fast("monitor", exc)
    counts = _plain(result)
    for rule, c in counts["rules"].items():
        log.info(
            "rule %s: matched %d, raised %d, suppressed %d, closed %d, open %d",
            rule,
            c["matched"],
            c["raised"],
            c["suppressed"],
            c["closed"],
            c["open"],
        )
    return counts


def happiness_task() -> dict[str, Any]:
    """Rebuild the happiness list from the feeds and the applied dispositions."""
    from lidm.central import db
    from lidm.config import get_settings
    from lidm.contracts import load_catalog
    from lidm.monitor.assistance_spec import assistance_dir
    from lidm.monitor.happiness import build_assistance_records
    from lidm.monitor.lifecycle import city_now

    settings = get_settings()
    catalog = load_catalog(settings.contracts_dir)
    engine = db.connect(settings)
    try:
        counts = build_assistance_records(
            engine, catalog, now=city_now(settings.timezone), directory=assistance_dir(settings.rules_dir)
        )
    finally:
        engine.dispose()
    log.info("happiness list rebuilt: %s", counts)
    return _plain(counts)


def needs_task() -> dict[str, Any]:
    """Rebuild the needs list and its summary for charity from the open warnings and the home visits."""
    from lidm.config import get_settings
    from lidm.monitor.needs import needs

    counts = needs(get_settings())
    log.info("needs list rebuilt: %s", counts)
    return _plain(counts)


def _through_channel(department: str, what: str, action: Any) -> Any:
    """Run ``action(settings, departments=[department])`` with the department's channel from Airflow."""
    from lidm.config import get_settings

    try:
        with tempfile.TemporaryDirectory(prefix="lidm-conn-") as folder:
            settings = settings_with_channel(get_settings(), department, Scratch(Path(folder)))
            result = action(settings, departments=[department])
    except LidmError as exc:
        if retryable(exc):
            raise
        _fail_fast(f"{what} {department}", exc)
    return _plain(result)


def push_task(department: str) -> Any:
    """Push the department's new warnings through its channel."""
    from lidm.monitor.push import push_warnings

    return _through_channel(department, "push to", push_warnings)


def collect_task(department: str) -> Any:
    """Take in the department's acknowledgements and dispositions; a file refused whole fails the task (no retry:
    the department must send it again), after everything else was taken in."""
    from airflow.sdk.exceptions import AirflowFailException

    from lidm.monitor.feedback import collect_dispositions

    result = _through_channel(department, "dispositions from", collect_dispositions)
    refused = [s for s in result["sources"] if s["status"] == "rejected"]
    if refused:
        files = "; ".join(f"{s['source'].rsplit('/', 1)[-1]}: {s['reason']}" for s in refused)
        raise AirflowFailException(
            f"dispositions from {department}: {len(refused)} file(s) refused whole, the rest taken in; the "
            f"department finds why in its outbox (result_<file>.csv) and sends them again: {files}"
        )
    return result


def purge_task() -> dict[str, Any]:
    """Delete rows past their contract's retention and old quarantine rows (lidm.central.retention)."""
    from lidm.central.retention import purge_expired
    from lidm.config import get_settings

    try:
        result = purge_expired(get_settings())
    except LidmError as exc:
        if retryable(exc):
            raise
        _fail_fast("purge", exc)
    log.info("purge: %d rows deleted (%s; quarantine %d)", result.total, result.datasets, result.quarantine)
    return _plain(result.as_dict())
