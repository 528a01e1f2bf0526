"""The needs list (需求清单, platform.needs) built from open warnings and home visits, and its summary for charity
(platform.needs_summary): on the demo city after a monitoring run, on SQLite and on PostgreSQL. The summary's totals
are the list's; a rebuild with nothing changed writes nothing; a need gone is retired and comes back when found again;
the charity sees counts per street and kind only, none under the threshold, nothing about a person or household
(an export on SQLite, its own view under `lidm grants apply` on PostgreSQL)."""

from __future__ import annotations

import contextlib
import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pyarrow as pa
import pytest
import sqlalchemy as sa
import yaml
from conftest import PG_ADMIN_DSN, consumer_roles, drop_consumer_roles_made_since
from lidm_samples.demo import demo_settings, run_demo
from lidm_samples.departments.civil_affairs.home_visit import visit_cohorts
from lidm_samples.people import REFERENCE_DATE, REFERENCE_TIME
from lidm_samples.world import build_world

from lidm.central.export import export_dataset
from lidm.config import Settings
from lidm.contracts.load import load_catalog
from lidm.errors import LidmError
from lidm.keys import load_keyring
from lidm.monitor import monitor
from lidm.monitor.needs import build_needs, load_kinds, needs_file
from lidm.protect import Protector

CATALOG = load_catalog()
SIZE, SEED = 1500, 20261127
THRESHOLD = 2  # low, so the small demo city has cells on both sides of it
CHARITY_COLUMNS = {
    "summary_id",
    "district_code",
    "district_name",
    "street_code",
    "need_kind",
    "households_shown",
    "suppressed",
    "updated_at",
}


@dataclass
class City:
    settings: Settings
    engine: sa.Engine
    kinds: Path

    def rows(self, sql: str) -> list[sa.Row]:
        with self.engine.connect() as conn:
            return conn.execute(sa.text(sql)).all()

    def build(self) -> dict[str, int]:
        return build_needs(self.engine, CATALOG, now=REFERENCE_TIME, path=self.kinds)


@contextlib.contextmanager
def _city(tmp_path: Path, url: str | None) -> Iterator[City]:
    """The demo city loaded, its rules run, a needs mapping whose threshold is THRESHOLD."""
    home = tmp_path / "city"
    run_demo(home, size=SIZE, seed=SEED, bad=0, central_url=url)
    settings = demo_settings(home, url)
    monitor(settings, as_of=REFERENCE_DATE)
    kinds = yaml.safe_load(needs_file().read_text("utf-8")) | {"suppress_below": THRESHOLD}
    path = tmp_path / "kinds.yaml"
    path.write_text(yaml.safe_dump(kinds, allow_unicode=True), "utf-8")
    engine = sa.create_engine(settings.effective_central_url)
    try:
        yield City(settings, engine, path)
    finally:
        engine.dispose()


def _check_the_list(city: City) -> None:
    first = city.build()
    assert first["needs_inserted"] == first["needs_live"] > 0 and first["summary_live"] > 0
    live = "_retired_batch IS NULL"
    [(needs,)] = city.rows(f"SELECT count(*) FROM platform_needs WHERE {live}")
    [(total,)] = city.rows(f"SELECT sum(households) FROM platform_needs_summary WHERE {live}")
    assert total == needs  # every household's need counted once in the summary
    per_kind = dict(city.rows(f"SELECT need_kind, count(*) FROM platform_needs WHERE {live} GROUP BY need_kind"))
    summed = city.rows(f"SELECT need_kind, sum(households) FROM platform_needs_summary WHERE {live} GROUP BY need_kind")
    assert {k: int(v) for k, v in summed} == per_kind
    # one row per household (or person on their own) and kind
    [(distinct,)] = city.rows(
        "SELECT count(*) FROM (SELECT DISTINCT COALESCE(household_id_token, id_number_token), need_kind"
        f" FROM platform_needs WHERE {live}) d"
    )
    assert distinct == needs
    assert {s for (s,) in city.rows("SELECT DISTINCT source FROM platform_needs")} == {"warning", "visit", "both"}
    shown = city.rows(f"SELECT households, households_shown, suppressed FROM platform_needs_summary WHERE {live}")
    assert all((h < THRESHOLD) == bool(s) and (n is None if s else n == h) for h, n, s in shown)
    assert {bool(s) for _, _, s in shown} == {True, False}

    # the planted visit findings: newly ill, no medical assistance -> a medical need from the warning and the visit,
    # and care from the visit alone
    ill = sorted(visit_cohorts(build_world(SIZE, SEED))["visit_serious_illness"])
    protector = Protector(CATALOG["civil_affairs.home_visit"], load_keyring(city.settings))
    tokens = protector.token(pa.array(ill, type=pa.string())).to_pylist()
    quoted = ", ".join(f"'{t}'" for t in tokens)
    hexed = (
        "encode(id_number_token, 'hex')" if city.engine.dialect.name == "postgresql" else "lower(hex(id_number_token))"
    )
    found = city.rows(f"SELECT {hexed}, need_kind, source FROM platform_needs WHERE {hexed} IN ({quoted})")
    assert {(t, "medical", "both") for t in tokens} <= set(found)
    assert {(t, "care", "visit") for t in tokens} <= set(found)

    again = city.build()  # nothing changed: nothing written
    assert {k: v for k, v in again.items() if not k.endswith(("_live", "_withheld"))} == dict.fromkeys(
        ("needs_inserted", "needs_updated", "needs_retired", "summary_inserted", "summary_updated", "summary_retired"),
        0,
    )

    # a later visit no longer asks for legal aid: the need is retired, and found again it is live again
    with city.engine.begin() as conn:
        asked = conn.execute(sa.text("SELECT id_number_token, needs FROM civil_affairs_home_visit")).all()
        legal = [(t, n) for t, n in asked if n and "legal_aid" in n.split(",")]
        assert legal
        conn.execute(sa.text("UPDATE civil_affairs_home_visit SET needs = NULL WHERE needs LIKE '%legal_aid%'"))
    gone = city.build()
    assert gone["needs_retired"] >= len(legal) and gone["needs_inserted"] == 0
    assert city.rows(f"SELECT count(*) FROM platform_needs WHERE need_kind = 'legal_aid' AND {live}") == [(0,)]
    assert city.rows(f"SELECT count(*) FROM platform_needs_summary WHERE need_kind = 'legal_aid' AND {live}") == [(0,)]
    with city.engine.begin() as conn:
        for token, asked_for in legal:
            conn.execute(
                sa.text("UPDATE civil_affairs_home_visit SET needs = :n WHERE id_number_token = :t"),
                {"n": asked_for, "t": token},
            )
    back = city.build()
    assert back["needs_updated"] >= len(legal) and back["needs_live"] == first["needs_live"]


def _check_the_charity_export(city: City, out: Path) -> None:
    """What `lidm export charity platform.needs_summary` gives: the grant's columns, no small count."""
    result = export_dataset(city.settings, "charity", "platform.needs_summary", out)
    assert set(result.columns) == CHARITY_COLUMNS and result.rows > 0
    with out.open(encoding="utf-8-sig") as fh:
        rows = list(csv.DictReader(fh))
    assert all(r["households_shown"] == "" or int(r["households_shown"]) >= THRESHOLD for r in rows)
    assert any(r["households_shown"] for r in rows)
    for dataset in (
        "platform.needs",
        "platform.warning",
        "civil_affairs.home_visit",
        "civil_affairs.low_income_roster",
    ):
        with pytest.raises(LidmError, match="no grant"):
            export_dataset(city.settings, "charity", dataset, out.with_name("refused.csv"))


def test_the_needs_list_and_the_charitys_summary_on_sqlite(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with _city(tmp_path, None) as city:
        _check_the_list(city)
        _check_the_charity_export(city, tmp_path / "charity.csv")
        [(before,)] = city.rows("SELECT count(*) FROM platform_needs_summary WHERE suppressed = 0")

        # `lidm monitor needs` rebuilds with the deployment's mapping (threshold 5): the list is the same, more
        # summary cells are withheld
        from typer.testing import CliRunner

        from lidm.cli import app

        monkeypatch.setattr("lidm.cli.get_settings", lambda: city.settings)
        out = CliRunner().invoke(app, ["monitor", "needs", "--json"])
        assert out.exit_code == 0, out.output
        counts = json.loads(out.output.strip().splitlines()[-1])
        assert counts["needs_inserted"] == counts["needs_updated"] == counts["needs_retired"] == 0
        assert counts["summary_updated"] == before > 0  # every cell shown at 2 with fewer than 5 is withheld now
        assert counts["summary_withheld"] == counts["summary_live"]  # a small city: every street cell under 5
        out = CliRunner().invoke(app, ["monitor", "needs"])
        assert out.exit_code == 0 and "platform.needs_summary" in out.output and "withheld" in out.output


def _charity_view(url: str, sql: str) -> list[tuple]:
    """A query as the charity's role, the way its analyst reads (SET ROLE on the admin connection)."""
    from lidm.central.grants import role_name

    database = url.rsplit("/", 1)[1]
    with psycopg.connect(PG_ADMIN_DSN.replace("dbname=postgres", f"dbname={database}"), autocommit=True) as conn:
        conn.execute(f'SET ROLE "{role_name("charity")}"')
        return conn.execute(sql).fetchall()


@pytest.mark.postgres
def test_the_needs_list_and_the_charitys_own_view_on_postgresql(tmp_path: Path, pg_clean_url: str) -> None:
    from lidm.central.grants import apply, schema_name

    before = consumer_roles()
    try:
        with _city(tmp_path, pg_clean_url) as city:
            _check_the_list(city)
            _check_the_charity_export(city, tmp_path / "charity.csv")
            apply(city.engine, CATALOG, keyring=load_keyring(city.settings))
            schema = schema_name("charity")
            views = _charity_view(
                pg_clean_url,
                f"SELECT table_name FROM information_schema.tables WHERE table_schema = '{schema}'",
            )
            assert views == [("platform_needs_summary",)]  # the summary only: no list, warning, visit or roster
            columns = _charity_view(
                pg_clean_url,
                f"SELECT column_name FROM information_schema.columns WHERE table_schema = '{schema}'"
                " AND table_name = 'platform_needs_summary'",
            )
            assert {c for (c,) in columns} == CHARITY_COLUMNS  # no id, name or household token, no raw count
            shown = _charity_view(pg_clean_url, f'SELECT households_shown FROM "{schema}".platform_needs_summary')
            assert shown and all(n is None or n >= THRESHOLD for (n,) in shown)
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                _charity_view(pg_clean_url, "SELECT count(*) FROM public.platform_needs")
    finally:
        drop_consumer_roles_made_since(before)


def test_the_needs_mapping_is_checked_against_the_contracts(tmp_path: Path) -> None:
    kinds = load_kinds(catalog=CATALOG)
    assert kinds.from_warnings["illness"] == "medical" and kinds.suppress_below == 5
    assert "no_longer_eligible" not in kinds.from_warnings  # a check, not a need
    for bad, message in (
        ({"from_warnings": {"illness": "surgery"}}, "surgery not among platform.needs need_kind"),
        ({"from_warnings": {"flood": "housing"}}, "flood not a code it maps from"),
        ({"from_visits": {"massage": "care"}}, "massage not a code it maps from"),
        ({"suppress_below": 0}, "suppress_below"),
    ):
        doc = yaml.safe_load(needs_file().read_text("utf-8")) | bad
        path = tmp_path / "kinds.yaml"
        path.write_text(yaml.safe_dump(doc, allow_unicode=True), "utf-8")
        with pytest.raises(LidmError, match=message):
            load_kinds(path, CATALOG)
