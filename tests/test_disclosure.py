"""Disclosure (issue 15): no consumer can rebuild a masked value from everything else granted to it."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import yaml
from lidm_samples import generate_people
from typer.testing import CliRunner

from lidm.contracts import disclosure, load_catalog
from lidm.contracts.disclosure import (
    ID_MASK,
    ID_MASK_CITY_LAST2,
    ID_MASK_DIVISION_LAST4,
    MASK_FORMATS,
    PHONE_MASK,
    REBUILD_THRESHOLD,
    TEXT_MASK,
    Part,
    candidates,
    rebuildable,
)
from lidm.contracts.lint import lint
from lidm.contracts.load import default_contracts_dir
from lidm.contracts.model import GrantLevel
from lidm.idnumber import CHECK_CHARS, WEIGHTS
from lidm.protect import mask

OLD = {**MASK_FORMATS, "id_number": ID_MASK_DIVISION_LAST4}
POPULATION = "health.population"
COUNTIES = {f"civil_affairs.{d}" for d in ("furong", "tianxin", "yuelu", "kaifu", "yuhua", "wangcheng")}

# Which characters of an ID number each part occupies (GB 11643-1999).
ID_POSITIONS = {
    Part.REGION: range(0, 4),
    Part.DISTRICT: range(4, 6),
    Part.BIRTH_DATE: range(6, 14),
    Part.SEQUENCE_HIGH: range(14, 16),
    Part.SEQUENCE_LOW: range(16, 17),
    Part.GENDER: range(16, 17),
    Part.CHECK: range(17, 18),
}


@pytest.fixture(scope="module")
def catalog():
    return load_catalog()


def test_the_shipped_grants_leave_nothing_to_rebuild(catalog):
    assert rebuildable(catalog) == []
    assert not [f for f in lint(catalog, "4301") if "rebuild" in f.message]


def test_the_old_id_mask_beside_a_clear_birth_date_is_a_lint_error(catalog, monkeypatch):
    # The issue as it was: county bureaus see 430102********1413 beside birth_date in clear.
    found = [r for r in rebuildable(catalog, formats=OLD) if r.contract == POPULATION and r.field == "id_number"]
    assert {r.consumer for r in found} >= COUNTIES
    assert all(
        r.candidates == 1 and any(b.startswith("health.population.birth_date") for b in r.revealed_by) for r in found
    )

    monkeypatch.setattr(disclosure, "MASK_FORMATS", OLD)
    [error] = [f for f in lint(catalog, "4301") if "rebuild" in f.message]
    assert (error.severity, error.contract, error.field) == ("error", POPULATION, "id_number")
    assert error.where.startswith(catalog[POPULATION].source_file + ":")  # the grant's line
    assert "civil_affairs.furong" in error.message and "health.population.birth_date" in error.message

    from lidm.cli import app

    out = CliRunner().invoke(app, ["contracts", "lint"])
    assert out.exit_code == 1, out.output
    assert "rebuild" in out.output


def test_the_first_proposal_of_the_issue_still_leaves_ten_candidates(catalog):
    # 4301************13 keeps the gender digit and the check character: with birth date and district granted,
    # two sequence digits stay hidden and the check character rules out ten in eleven of their 100 values.
    found = rebuildable(catalog, formats={**MASK_FORMATS, "id_number": ID_MASK_CITY_LAST2})
    assert {(r.contract, r.field, r.candidates) for r in found} == {(POPULATION, "id_number", 10)}


def test_the_model_counts_what_stays_hidden():
    everything = [Part.REGION, Part.DISTRICT, Part.BIRTH_DATE, Part.GENDER]
    assert candidates(ID_MASK, everything) == 500  # the sequence, its parity known: the floor for any mask
    assert candidates(ID_MASK, []) >= 10**9
    assert candidates(ID_MASK_DIVISION_LAST4, [Part.BIRTH_DATE]) == 1
    assert candidates(ID_MASK_CITY_LAST2, everything) == 10
    assert candidates(PHONE_MASK, []) >= REBUILD_THRESHOLD  # a 10-digit landline keeps three digits hidden
    assert candidates(TEXT_MASK, []) >= REBUILD_THRESHOLD  # a two-character name hides its given name


def test_the_declared_formats_are_what_protect_masks(catalog):
    roster = catalog["civil_affairs.low_income_roster"]
    number = "430102199003071234"
    [shown] = mask(roster.field("id_number"), pa.array([number])).to_pylist()
    assert shown == ID_MASK.example and len(shown) == 18
    for part, positions in ID_POSITIONS.items():
        visible = all(shown[i] == number[i] for i in positions)
        assert visible == (part in ID_MASK.shows), part
    assert mask(roster.field("phone"), pa.array(["13812345678"])).to_pylist() == [PHONE_MASK.example]
    assert mask(roster.field("name"), pa.array(["王小明"])).to_pylist() == [TEXT_MASK.example]


def test_a_phone_masked_here_and_clear_in_a_joined_dataset_is_not_a_rebuild(catalog):
    # The county sees return-risk phones masked and roster phones clear, both joinable on the ID number: for
    # people on both it already holds the phone, so the combination teaches it nothing; it is not flagged.
    county = "civil_affairs.furong"
    levels = {c.id: g.fields for c, g in catalog.grants_for(county)}
    assert levels["agriculture_rural.return_risk_monitoring"]["phone"] is GrantLevel.MASKED
    assert levels["civil_affairs.low_income_roster"]["phone"] is GrantLevel.CLEAR
    assert not [r for r in rebuildable(catalog) if r.consumer == county]


def _add_grants(directory: Path, contract: str, grants: list[dict]) -> None:
    department, dataset = contract.split(".")
    path = directory / department / f"{dataset}.yaml"
    doc = yaml.safe_load(path.read_text("utf-8"))
    prop = next(p for p in doc["customProperties"] if p["property"] == "lidmGrants")
    prop["value"] += grants
    path.write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False), "utf-8")


def _variant(tmp_path: Path, link: bool) -> Path:
    """Justice gets deaths with the ID masked, and the population's birth dates joinable on the ID token."""
    directory = tmp_path / "contracts"
    shutil.copytree(default_contracts_dir(), directory)
    deaths = [{"consumer": "justice", "purpose": "test", "fields": {"id_number": "masked", "gender": "clear"}}]
    if link:  # a second grant gives the same consumer the token too: its rows join the population's
        deaths.append({"consumer": "justice", "purpose": "test", "fields": {"id_number": "token"}})
    _add_grants(directory, "health.deaths", deaths)
    population = {"id_number": "token", "birth_date": "clear", "district_code": "clear"}
    _add_grants(directory, POPULATION, [{"consumer": "justice", "purpose": "test", "fields": population}])
    return directory


def test_parts_revealed_in_another_dataset_count_when_the_rows_join(tmp_path):
    linked = load_catalog(_variant(tmp_path / "a", link=True))
    [r] = [r for r in rebuildable(linked, formats=OLD) if r.consumer == "justice"]
    assert (r.contract, r.field, r.candidates) == ("health.deaths", "id_number", 1)
    assert r.revealed_by == ("health.population.birth_date (birth_date)",)
    assert "justice" in str(r) and "health.population.birth_date" in str(r)
    # The current mask leaves the sequence: 500 candidates even with all of it.
    assert not [r for r in rebuildable(linked) if r.consumer == "justice"]
    # Without a key to join on, the population's birth dates are nobody's in particular.
    unlinked = load_catalog(_variant(tmp_path / "b", link=False))
    assert not [r for r in rebuildable(unlinked, formats=OLD) if r.consumer == "justice"]


def _rebuilds(masked: str, district: str, birth: str, male: bool) -> int:
    """Checksum-valid ID numbers that fit a mask and what the attacker knows: district, birth date, gender."""
    template = list(masked)
    for i, known in zip(range(0, 14), district + birth, strict=True):
        if template[i] == "*":
            template[i] = known
        elif template[i] != known:
            return 0
    seq = np.arange(1000)
    seq = seq[seq % 2 == (1 if male else 0)]
    digits = np.stack([seq // 100, seq // 10 % 10, seq % 10], axis=1)
    for j in range(3):
        if template[14 + j] != "*":
            digits = digits[digits[:, j] == int(template[14 + j])]
    body = np.array([int(c) for c in template[:14]], dtype=np.int64)
    full = np.hstack([np.tile(body, (len(digits), 1)), digits])
    checks = CHECK_CHARS[(full @ WEIGHTS) % 11]
    if template[17] != "*":
        checks = checks[checks == ord(template[17])]
    return len(checks)


def _attack(people, masked: list[str]) -> list[int]:
    return [
        _rebuilds(m, p.district_code, f"{p.birth_date:%Y%m%d}", p.gender == "male")
        for p, m in zip(people, masked, strict=True)
    ]


def test_an_attacker_with_birth_date_gender_and_district_rebuilds_no_id_number(catalog):
    people = generate_people(300, seed=15)
    ids = pa.array([p.id_number for p in people])
    field = catalog[POPULATION].field("id_number")

    old = _attack(people, [m[:6] + "*" * 8 + m[14:] for m in ids.to_pylist()])
    assert sum(n == 1 for n in old) == len(people)  # the issue: every one of them, as 129 of 129

    proposal = _attack(people, [m[:4] + "*" * 12 + m[16:] for m in ids.to_pylist()])
    assert sum(n == 1 for n in proposal) == 0 and max(proposal) < REBUILD_THRESHOLD  # no unique one, but ~9

    new = _attack(people, mask(field, ids).to_pylist())
    assert sum(n == 1 for n in new) == 0
    assert set(new) == {candidates(ID_MASK, [Part.REGION, Part.DISTRICT, Part.BIRTH_DATE, Part.GENDER])} == {500}


def test_quasi_identifiers_are_what_each_consumer_reads_in_bulk(catalog):
    seen = disclosure.quasi_identifiers(catalog)
    assert seen["civil_affairs.furong"][POPULATION] == ["gender", "birth_date:year", "district_code", "street_code"]
    assert "household_id" not in str(seen)  # tokens are pseudonyms for joining, not attributes


def test_smallest_group_counts_live_rows_in_postgresql(pg_url):
    import sqlalchemy as sa

    engine = sa.create_engine(pg_url)
    rows = [
        ("430102", "female", "1950-03-01", None),
        ("430102", "female", "1950-11-30", None),
        ("430102", "male", "1950-05-05", None),
        ("430103", "male", "1962-01-01", None),
        ("430103", "male", "1962-02-02", None),
        ("430103", "male", "1980-02-02", "b1"),  # retired: no longer anybody's row
    ]
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("DROP TABLE IF EXISTS k_anon_people"))
            conn.execute(
                sa.text(
                    "CREATE TABLE k_anon_people (district_code text, gender text, birth_date date, _retired_batch text)"
                )
            )
            for r in rows:
                conn.execute(
                    sa.text("INSERT INTO k_anon_people VALUES (:d, :g, CAST(:b AS date), :r)"),
                    {"d": r[0], "g": r[1], "b": r[2], "r": r[3]},
                )
            group = disclosure.smallest_group
            assert group(conn, "k_anon_people", ["district_code"]) == 2
            assert group(conn, "k_anon_people", ["district_code", "birth_date:year"]) == 2
            assert group(conn, "k_anon_people", ["district_code", "gender", "birth_date:year"]) == 1  # the man
            conn.execute(sa.text("DROP TABLE k_anon_people"))
    finally:
        engine.dispose()


def test_grants_apply_refuses_a_rebuildable_grant_set_and_changes_nothing(catalog, monkeypatch, pg_clean_url):
    import sqlalchemy as sa

    from lidm.central import grants
    from lidm.errors import ContractError

    monkeypatch.setattr(disclosure, "MASK_FORMATS", OLD)
    engine = sa.create_engine(pg_clean_url)
    try:
        with pytest.raises(ContractError, match=r"refused, nothing was changed.*rebuild"):
            grants.apply(engine, catalog)
        with engine.connect() as conn:  # nothing was made: no consumer schema in this database
            schemas = conn.execute(
                sa.text("SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'lidm_%'")
            ).scalar_one()
        assert schemas == 0
    finally:
        engine.dispose()


def test_k_report_measures_each_consumer_dataset_on_live_rows(catalog, pg_clean_url):
    import sqlalchemy as sa

    from lidm.contracts.disclosure import MIN_K, k_report

    engine = sa.create_engine(pg_clean_url)
    try:
        with engine.begin() as conn:
            table = catalog["civil_affairs.low_income_roster"].table
            conn.execute(sa.text(f'CREATE TABLE {table} (district_code text, street_code text, "_retired_batch" text)'))
            rows = [("430102", "430102001")] * 6 + [("430103", "430103001")] * 2
            for d, st in rows:
                conn.execute(sa.text(f"INSERT INTO {table} VALUES (:d, :s, NULL)"), {"d": d, "s": st})
            conn.execute(sa.text(f"INSERT INTO {table} VALUES ('430104', '430104001', 'retired')"))  # not live
            report = k_report(catalog, conn)
    finally:
        engine.dispose()
    mine = [r for r in report if r.contract == "civil_affairs.low_income_roster"]
    assert mine and {r.k for r in mine if set(r.columns) <= {"district_code", "street_code"}} == {2}
    assert all(r.below for r in mine if r.k == 2) and MIN_K > 2
    assert all(r.contract == "civil_affairs.low_income_roster" for r in report)  # only tables that exist
