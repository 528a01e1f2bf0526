"""Grants on the embedded SQLite: a consumer's export holds only its granted columns and rows."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import sqlalchemy as sa
from lidm_samples.demo import demo_settings, run_demo

from lidm.central import db
from lidm.central.export import export_dataset
from lidm.errors import LidmError

ROSTER = "civil_affairs.low_income_roster"


@pytest.fixture(scope="module")
def city(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    home = tmp_path_factory.mktemp("export-city")
    run_demo(home, size=800, bad=0, feeds=[ROSTER])
    return demo_settings(home)


def _read(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8-sig", newline="") as fh:
        return list(csv.DictReader(fh))


def test_a_county_gets_its_districts_rows_and_no_encrypted_column(city, tmp_path: Path) -> None:
    result = export_dataset(city, "civil_affairs.furong", ROSTER, tmp_path / "furong.csv")
    rows = _read(result.path)
    engine = db.connect(city)
    with engine.connect() as conn:
        expected = conn.execute(
            sa.text(
                "SELECT count(*) FROM civil_affairs_low_income_roster "
                "WHERE district_code = '430102' AND _retired_batch IS NULL"
            )
        ).scalar_one()
    engine.dispose()
    assert len(rows) == result.rows == expected > 0
    assert {r["district_code"] for r in rows} == {"430102"}
    assert not any(c.endswith("_enc") or c.startswith("_") for c in result.columns)
    assert "id_number" in result.withheld and "name" in result.withheld  # clear only through reidentify


def test_a_department_gets_only_its_granted_columns(city, tmp_path: Path) -> None:
    result = export_dataset(city, "hr_social_security", ROSTER, tmp_path / "hr.csv")
    assert set(result.columns) == {"id_number_token", "category", "categories", "status", "district_code"}
    rows = _read(result.path)
    assert rows and set(rows[0]) == set(result.columns)


def test_no_grant_no_export(city, tmp_path: Path) -> None:
    with pytest.raises(LidmError, match="no consumer"):
        export_dataset(city, "police", ROSTER, tmp_path / "x.csv")
    with pytest.raises(LidmError, match="no contract"):
        export_dataset(city, "justice", "health.nothing", tmp_path / "x.csv")
    assert not (tmp_path / "x.csv").exists()
