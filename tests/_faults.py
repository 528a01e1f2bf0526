"""The fault suite's frame: the context a case gets, shared sample data, outcome helpers, and the invariant
every case is checked against afterwards. The cases live in ``test_fault_suite.py`` and ``fault_cases_*.py``.
"""

from __future__ import annotations

import dataclasses
import os
import secrets
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from _db import query
from lidm_samples import ROSTER_HEADER, generate_people, generate_roster, population_rows, roster_rows
from lidm_samples.sources import csv_bytes
from lidm_samples.write import write_population_table

from lidm import Adapter, SqlSource
from lidm.pipeline import BatchResult, run_feed
from lidm.registry import get_adapter
from lidm.sources.localstore import LocalStore
from lidm.testkit import kinds_in

ROSTER = "civil_affairs.low_income_roster"
ROSTER_TABLE = "civil_affairs_low_income_roster"
POPULATION = "health.population"
BOM = b"\xef\xbb\xbf"
ID = "身份证号"


# --------------------------------------------------------------------------- shared sample data

_PEOPLE = generate_people(300, seed=71)
_ROSTER = roster_rows(generate_roster(_PEOPLE, share=0.1, seed=71)).rows
_POPULATION = population_rows(generate_people(120, seed=72)).rows


def roster() -> list[dict[str, Any]]:
    return [dict(r) for r in _ROSTER]


def population() -> list[dict[str, Any]]:
    return [dict(r) for r in _POPULATION]


def gbk(rows: list[dict[str, Any]]) -> bytes:
    return csv_bytes(ROSTER_HEADER, rows, "gb18030")


# --------------------------------------------------------------------------- the context a case gets


@dataclass
class Ctx:
    request: pytest.FixtureRequest
    tmp: Path
    gateway: Any  # conftest.Gateway on PostgreSQL
    monkeypatch: pytest.MonkeyPatch
    logs: list[str] = field(default_factory=list)  # extra texts to scan for leaks (exception messages...)
    raised: BaseException | None = None

    @property
    def url(self) -> str:
        return self.gateway.central_url

    @property
    def settings(self):  # type: ignore[no-untyped-def]
        return self.gateway.settings

    @property
    def folder(self) -> Path:
        return self.tmp / "inbox"

    def drop(self, name: str, data: bytes, *, marker: str | None = "") -> dict[str, str]:
        store = LocalStore(self.folder)
        store.put(name, data)
        if marker is not None:
            store.put(name + ".ok", marker.encode())
        return {"civil_affairs_drop": self.folder.as_uri()}

    def run(
        self, adapter: Adapter | str = ROSTER, conns: dict[str, str] | None = None, settings=None
    ) -> list[BatchResult]:  # type: ignore[no-untyped-def]
        conns = conns if conns is not None else {"civil_affairs_drop": self.folder.as_uri()}
        results = run_feed(adapter, settings or self.settings, connections=conns)
        self.logs.extend(r.reason or "" for r in results)
        return results

    def raises(self, exc: type[BaseException] | tuple[type[BaseException], ...], fn: Callable[[], Any]) -> str:
        with pytest.raises(exc) as info:
            fn()
        message = str(info.value)
        self.raised = info.value
        self.logs.append(message)
        return f"{type(info.value).__name__}: {message}"

    def count(self, sql: str) -> int:
        return query(self.url, sql)[0][0]

    def mariadb(self):  # type: ignore[no-untyped-def]
        return self.request.getfixturevalue("mariadb_odbc")

    def sftp(self):  # type: ignore[no-untyped-def]
        return self.request.getfixturevalue("sftp_server")


def roster_utf8() -> Adapter:
    a = get_adapter(ROSTER)
    return dataclasses.replace(a, source=dataclasses.replace(a.source, encoding="utf-8"))


def one(results: list[BatchResult]) -> BatchResult:
    assert len(results) == 1, results
    return results[0]


def rejected(ctx: Ctx, r: BatchResult, code: str, name: str, *must: str) -> str:
    """A whole-delivery rejection: reason code, file named, the delivery moved aside with its reason file."""
    assert r.status == "rejected", (r.status, r.reason)
    assert f"[{code}]" in r.reason or code in r.reason, r.reason
    assert name in r.reason, r.reason
    for text in must:
        assert text in r.reason, (text, r.reason)
    assert not (ctx.folder / name).exists() and (ctx.folder / "rejected" / name).exists()
    assert code in (ctx.folder / "rejected" / f"{name}.reason.txt").read_text("utf-8")
    assert ctx.count(f"SELECT COUNT(*) FROM {ROSTER_TABLE}") == 0 or code == "replay"
    return f"rejected [{code}]"


def loaded(r: BatchResult, n: int, quarantined: int = 0) -> str:
    assert (r.status, r.extracted, r.loaded, r.quarantined) == ("loaded", n, n - quarantined, quarantined), r
    return f"loaded {r.loaded}, quarantined {r.quarantined}"


def quarantine_rows(ctx: Ctx) -> list[tuple[str, int, str, str]]:
    return [tuple(x) for x in query(ctx.url, "SELECT reason, row_number, field, message FROM lidm_quarantine")]


def incremental(ctx: Ctx):  # type: ignore[no-untyped-def]
    """health.population declared incremental on gxsj, reading t_population from MariaDB over ODBC."""
    from lidm.contracts.load import default_contracts_dir

    contracts = ctx.tmp / "contracts"
    shutil.copytree(default_contracts_dir(), contracts)
    path = contracts / "health" / "population.yaml"
    text = path.read_text("utf-8").replace(
        "  - {property: lidmUpdateMode, value: full}",
        "  - {property: lidmUpdateMode, value: incremental}\n  - {property: lidmWatermark, value: updated_at}",
    )
    path.write_text(text, "utf-8")
    settings = ctx.settings.model_copy(update={"contracts_dir": contracts})
    base = get_adapter(POPULATION)
    adapter = Adapter(
        contract=base.contract,
        source=SqlSource(connection="health_db", table="t_population", watermark="gxsj"),
        mapping=base.mapping,
        name="health.population.incremental",
    )
    return settings, adapter


def maria(ctx: Ctx, rows: list[dict[str, Any]]) -> tuple[sa.Engine, dict[str, str]]:
    db = ctx.mariadb()
    engine = sa.create_engine(db.sqlalchemy_url)
    write_population_table(engine, rows)
    ctx.request.addfinalizer(engine.dispose)
    return engine, {"health_db": "odbc:" + db.odbc}


def maria_count(engine: sa.Engine) -> int:
    with engine.connect() as c:
        return c.execute(sa.text("SELECT COUNT(*) FROM t_population")).scalar_one()


def xlsx_adapter() -> Adapter:
    from test_bad_input import _xlsx_population_adapter

    return _xlsx_population_adapter()


def sftp_drop(ctx: Ctx, rows: list[dict[str, Any]] | None = None) -> tuple[Any, Path, str]:
    server = ctx.sftp()
    name = f"fault_{secrets.token_hex(4)}"
    folder = server.home / name
    folder.mkdir()
    ctx.request.addfinalizer(lambda: shutil.rmtree(folder, ignore_errors=True))
    LocalStore(folder).put("roster_1.csv", gbk(rows if rows is not None else roster()))
    LocalStore(folder).put("roster_1.csv.ok", b"")
    st = folder.parent.stat()
    for p in [folder, *folder.rglob("*")]:
        os.chown(p, st.st_uid, st.st_gid)
    return server, folder, name


def sftp_url(server: Any, name: str, *, port: int | None = None, known_hosts: Path | None = None) -> str:
    from urllib.parse import urlencode

    q = urlencode({"key_file": str(server.client_key), "known_hosts": str(known_hosts or server.known_hosts)})
    return f"sftp://{server.username}@{server.host}:{port or server.port}/{name}?{q}"


# --------------------------------------------------------------------------- a case


@dataclass(frozen=True)
class Case:
    id: str
    fault: str
    expected: str
    fn: Callable[[Ctx], str]
    bug: str | None = None  # a product bug: the case is xfail(strict=True)


# --------------------------------------------------------------------------- the common assertion


def assert_whole(url: str) -> dict[str, int]:
    """extracted = loaded + quarantined for every batch; nothing belongs to a batch that did not load."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            insp = sa.inspect(conn)
            if not insp.has_table("lidm_batch"):
                return {"batches": 0, "lost": 0, "leaks": 0}
            batches = conn.execute(
                sa.text(
                    "SELECT batch_id, status, extracted, loaded, quarantined, inserted, updated, reason FROM lidm_batch"
                )
            ).all()
            ok = {b.batch_id for b in batches if b.status == "loaded"}
            lost = 0
            for b in batches:
                assert b.status in ("loaded", "rejected"), f"batch {b.batch_id} left {b.status!r}"
                assert b.extracted == b.loaded + b.quarantined, b
                lost += b.extracted - b.loaded - b.quarantined
                if b.status != "loaded":
                    assert b.loaded == b.quarantined == 0, b
            tables = [t for t in insp.get_table_names() if any(c["name"] == "_batch_id" for c in insp.get_columns(t))]
            for t in tables:
                by_batch = f'SELECT CAST(_batch_id AS VARCHAR(36)), COUNT(*) FROM "{t}" GROUP BY 1'  # a uuid: its text
                for batch_id, n in conn.execute(sa.text(by_batch)):
                    assert batch_id in ok, f"{n} rows of {t} belong to batch {batch_id}, which did not load"
            for batch_id, n in conn.execute(
                sa.text("SELECT batch_id, COUNT(*) FROM lidm_quarantine GROUP BY batch_id")
            ):
                assert batch_id in ok, f"{n} quarantine rows belong to batch {batch_id}, which did not load"
                [want] = [b.quarantined for b in batches if b.batch_id == batch_id]
                assert n == want, f"batch {batch_id} counts {want} quarantined rows but wrote {n}"
            total_q = conn.execute(sa.text("SELECT COUNT(*) FROM lidm_quarantine")).scalar_one()
            assert total_q == sum(b.quarantined for b in batches), "a batch counts quarantined rows it never wrote"
            inserted: dict[str, int] = {}
            for b in conn.execute(
                sa.text(
                    "SELECT contract_id, SUM(inserted) FROM lidm_batch WHERE status = 'loaded' GROUP BY contract_id"
                )
            ):
                inserted[b[0].replace(".", "_")] = int(b[1])
            for t in tables:  # every inserted row is there, and no other: no batch without its rows
                n = conn.execute(sa.text(f'SELECT COUNT(*) FROM "{t}"')).scalar_one()
                assert n == inserted.get(t, 0), f"{t} holds {n} rows, loaded batches inserted {inserted.get(t, 0)}"
            texts = [b.reason or "" for b in batches]
            texts += [m for (m,) in conn.execute(sa.text("SELECT message FROM lidm_quarantine"))]
            leaks = sum(1 for t in texts if kinds_in(t))
            assert leaks == 0, "a batch reason or quarantine message carries a personal number"
            return {"batches": len(batches), "lost": lost, "leaks": leaks}
    finally:
        engine.dispose()
