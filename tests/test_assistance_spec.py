"""The happiness list's sources as data (rules/assistance/): declarations checked by name, compiled without code.

A small SQLite central database made from the contracts, a few generated rows: no service needed.
"""

from __future__ import annotations

import shutil
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa

from lidm.central.schema import dataset_table, full_metadata
from lidm.contracts.load import ContractCatalog, load_catalog
from lidm.errors import RuleError
from lidm.monitor.assistance_spec import assistance_dir, load_sources
from lidm.monitor.happiness import build_assistance_records

CATALOG = load_catalog()
SHIPPED = assistance_dir()
NOW = datetime(2026, 11, 27, 12, 0)
TEMPORARY = "civil_affairs.temporary_assistance.yaml"


def _declare(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def _shipped(name: str) -> str:
    return (SHIPPED / name).read_text(encoding="utf-8")


def test_the_shipped_declarations_are_checked_against_the_catalogue() -> None:
    sources = load_sources(catalog=CATALOG)
    assert Path(__file__).resolve().parents[1] / "rules" / "assistance" == SHIPPED
    assert len(sources) == len(list(SHIPPED.glob("*.yaml"))) == 15
    assert len({s.record_id.prefix for s in sources}) == 15
    feeds = {s.feed for s in sources}
    assert {"civil_affairs.low_income_roster", "platform.disposition", "justice.legal_aid"} <= feeds
    assert assistance_dir(Path("/srv/rules")) == Path("/srv/rules/assistance")


# What to break in the temporary-assistance declaration, and what the refusal must name (file and field).
BROKEN = [
    ("feed: civil_affairs.temporary_assistance", "feed: civil_affairs.temporary_asistance", "feed: no contract"),
    ("amount: {column: amount}", "amount: {column: amout}", "amount: civil_affairs.temporary_assistance has no column"),
    ("amount: {column: amount}", "amount: {column: _sealed}", "amount: civil_affairs.temporary_assistance._sealed"),
    ("amount: {column: amount}", "amont: {column: amount}", "amont: unknown key"),
    ("amount: {column: amount}", "amount: {colum: amount}", "amount: an expression is a literal or one of"),
    ("in_kind_value: {gt: 0}", "in_kind_value: {gtt: 0}", "in_kind_description.case.0.when.in_kind_value.gtt"),
    ("in_kind_value: {gt: 0}", "in_kind_valu: {gt: 0}", "in_kind_description.case.0.when.in_kind_valu: civil"),
    ("in_kind_value: {gt: 0}", "live: true", "in_kind_description.case.0.when.live: the declaration has no live"),
    ("then: 实物救助 / in-kind goods", "then: $monthstart", "in_kind_description.case.0.then: unknown variable"),
    ("assistance_kind: temporary_assistance", "assistance_kind: temp", "assistance_kind: temp not among the list's"),
    ("prefix: LS-", "prefix: ls", "record_id.prefix: a prefix is"),
    ("key: case_id", "key: case_number", "record_id.key: civil_affairs.temporary_assistance has no column"),
]


@pytest.mark.parametrize(("old", "new", "says"), BROKEN, ids=[b[1] for b in BROKEN])
def test_a_malformed_declaration_is_refused_naming_file_and_field(
    tmp_path: Path, old: str, new: str, says: str
) -> None:
    text = _shipped(TEMPORARY)
    assert old in text
    path = _declare(tmp_path, "broken.yaml", text.replace(old, new))
    with pytest.raises(RuleError) as err:
        load_sources(tmp_path, CATALOG)
    assert str(err.value).startswith(f"{path}: ") and says in str(err.value), str(err.value)


@pytest.mark.parametrize(
    ("name", "old", "new", "says"),
    [
        ("emergency.disaster_relief.yaml", "{map: status, values: {cancelled: revoked}}", "{column: status}",
         "disbursement_status: cancelled not among the list's codes"),
        ("civil_affairs.low_income_roster.yaml", "dibao: dibao_allowance", "dibaoo: dibao_allowance",
         "assistance_kind.values: dibaoo not among the codes of category"),
        ("justice.legal_aid.yaml", "[granted, assigned", "[grantd, assigned", "where.case_status: grantd not among"),
        ("platform.disposition.yaml", "table: lidm_disposition_result", "table: lidm_disposition",
         "live.exists.table: no contract nor platform table lidm_disposition"),
        ("civil_affairs.low_income_roster.yaml", "{ge: $month_start, or_null: true}", "{or_null: true}",
         "live.termination_date: a test needs one of"),
    ],
)  # fmt: skip
def test_codes_tables_and_tests_are_checked_too(tmp_path: Path, name: str, old: str, new: str, says: str) -> None:
    text = _shipped(name)
    assert old in text
    path = _declare(tmp_path, name, text.replace(old, new))
    with pytest.raises(RuleError, match=f"^{path}: ") as err:
        load_sources(tmp_path, CATALOG)
    assert says in str(err.value)


def test_two_sources_with_one_prefix_are_refused(tmp_path: Path) -> None:
    _declare(tmp_path, "a.yaml", _shipped(TEMPORARY))
    _declare(tmp_path, "b.yaml", _shipped(TEMPORARY))
    with pytest.raises(RuleError, match=r"b\.yaml: record_id\.prefix: LS- is also a\.yaml's"):
        load_sources(tmp_path)


def test_a_missing_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(RuleError, match="no such folder"):
        load_sources(tmp_path / "assistance", CATALOG)


# --------------------------------------------------------------------------- compiled, without code


def _central(tmp_path: Path, catalog: ContractCatalog) -> sa.Engine:
    """A central database with the catalogue's tables and three temporary-assistance cases."""
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'central.db'}")
    full_metadata(catalog).create_all(engine)
    t = dataset_table(CATALOG["civil_affairs.temporary_assistance"], sa.MetaData())
    rows = [
        {"case_id": f"LSJZ-2026-{i:04d}", "amount": Decimal(500 * i), "disbursement_status": status}
        for i, status in ((1, "paid"), (2, "approved"), (3, "revoked"))
    ]
    filler = {
        "_sealed": b"not-a-real-sealed-row",
        "id_number_masked": "4301**********0011",
        "name_masked": "张*",
        "assistance_type": "urgent",
        "reason": "illness",
        "advance_aid": False,
        "non_local": False,
        "approval_level": "street",
        "application_date": date(2026, 11, 2),
        "updated_at": datetime(2026, 11, 3, 9, 0),
        "district_code": "430102",
        "_batch_id": "7e570000-0000-4000-8000-000000000000",  # a uuid, as lidm names a batch
        "_row_digest": "d" * 64,
    }
    with engine.begin() as conn:
        for i, row in enumerate(rows):
            conn.execute(sa.insert(t).values({**filler, **row, "id_number_token": f"{i:064x}"}))
    return engine


def test_a_source_declared_only_as_a_file_produces_records(tmp_path: Path) -> None:
    """A new mapping (here a copy of temporary assistance under another prefix) needs no change in the SDK."""
    folder = tmp_path / "assistance"
    shutil.copytree(SHIPPED, folder)
    text = (
        _shipped(TEMPORARY)
        .replace("prefix: LS-", "prefix: XT-")
        .replace("assistance_kind: temporary_assistance", "assistance_kind: other")
    )
    _declare(folder, "civil_affairs.temporary_assistance.copy.yaml", text)
    engine = _central(tmp_path, CATALOG)
    try:
        counts = build_assistance_records(engine, CATALOG, now=NOW, directory=folder)
        with engine.connect() as conn:
            rows = conn.execute(
                sa.text(
                    "SELECT record_id, assistance_kind, amount, disbursement_status, granted_on "
                    "FROM platform_assistance_record ORDER BY record_id"
                )
            ).all()
        assert counts["civil_affairs.temporary_assistance"] == 6 and counts["records"] == 6
        copies = [r for r in rows if r.record_id.startswith("XT-")]
        assert [r.record_id for r in copies] == [f"XT-LSJZ-2026-{i:04d}" for i in (1, 2, 3)]
        assert {r.assistance_kind for r in copies} == {"other"}
        assert [(float(r.amount), r.disbursement_status) for r in copies] == [
            (500, "paid"),
            (1000, "approved"),
            (1500, "revoked"),
        ]
        assert {str(r.granted_on) for r in rows} == {"2026-11-02"}
        again = build_assistance_records(engine, CATALOG, now=NOW, directory=folder)
        assert again["inserted"] == again["updated"] == 0
    finally:
        engine.dispose()


def test_a_declaration_for_a_feed_the_city_lacks_is_skipped(tmp_path: Path) -> None:
    """A city without legal aid (a reference feed missing from its catalogue) builds the rest of its list."""
    city = ContractCatalog({c.id: c for c in CATALOG if c.id != "justice.legal_aid"}, CATALOG.consumers)
    folder = tmp_path / "assistance"
    for name in (TEMPORARY, "justice.legal_aid.yaml"):
        _declare(folder, name, _shipped(name))
    assert [s.feed for s in load_sources(folder, city)] == ["civil_affairs.temporary_assistance"]
    engine = _central(tmp_path, city)
    try:
        counts = build_assistance_records(engine, city, now=NOW, directory=folder)
    finally:
        engine.dispose()
    assert counts["records"] == 3 and "justice.legal_aid" not in counts


def test_every_declaration_file_kind_names_the_file_it_cannot_read(tmp_path):
    """Rules, happiness-list sources and sample declarations read their YAML alike: a list where a mapping belongs,
    or broken YAML, is refused naming the file, never with a traceback."""
    import pytest
    from lidm_samples.declared import load_declaration

    from lidm.errors import ConfigError, RuleError
    from lidm.monitor.assistance_spec import load_source
    from lidm.monitor.rules import load_rule

    listed, broken = tmp_path / "listed.yaml", tmp_path / "broken.yaml"
    listed.write_text("- feed: x\n", "utf-8")
    broken.write_text("feed: [x\n", "utf-8")
    for load, error in ((load_rule, RuleError), (load_source, RuleError)):
        with pytest.raises(error, match=rf"{listed}: a \w[\w ]* holds one mapping"):
            load(listed)
        with pytest.raises(error, match=rf"{broken}: cannot read the"):
            load(broken)
    with pytest.raises(ConfigError, match=rf"{listed}: a sample declaration holds one mapping \(source, people"):
        load_declaration(listed, "x.y")
    with pytest.raises(ConfigError, match=rf"{broken}: cannot read the sample declaration"):
        load_declaration(broken, "x.y")
