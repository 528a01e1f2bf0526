"""Issue 21, stored bytes: a dataset row's digest as 32 bytes, its batch as a uuid, its sealed values in the short
framing (2-byte field id, varint length), and migration 0024 converting a database filled under 0023 in place and
back, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pytest
import sqlalchemy as sa
import yaml
from alembic import command
from cryptography.exceptions import InvalidTag

from lidm.central import connect, db, migrate
from lidm.central.schema import dataset_table
from lidm.config import Settings
from lidm.contracts import load_catalog
from lidm.contracts.load import parse_contract
from lidm.contracts.model import sealed_field_id
from lidm.errors import ContractError
from lidm.keys import generate_keyring, load_keyring, write_keyring
from lidm.protect import Protector, open_row, row_plaintext, row_plaintext_v1, seal_rows

CATALOG = load_catalog()
ROSTER = "civil_affairs.low_income_roster"
PEOPLE = [("430102199003071234", "王小明"), ("430102198511230017", "李娜"), ("430103197001015511", "欧阳娜娜")]
BATCH = "b0000000-0000-4000-8000-000000000024"
BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
ROOT = Path(__file__).resolve().parents[1]


def _settings(tmp_path: Path, url: str | None) -> Settings:
    path = tmp_path / "keys" / "keyring.json"
    if not path.exists():
        write_keyring(generate_keyring(), path)
    return Settings(home=tmp_path, central_url=url, keyring=path)


def _row(t: sa.Table, **values: object) -> dict[str, object]:
    dummies = {sa.DateTime: datetime(2026, 11, 27, 8, 0), sa.Date: datetime(2026, 1, 5).date(), sa.Integer: 1}
    dummies |= {sa.Numeric: Decimal("650"), sa.Boolean: False}
    out: dict[str, object] = {}
    for c in t.columns:
        if not c.nullable and c.name not in values:
            out[c.name] = next((v for k, v in dummies.items() if isinstance(c.type, k)), "x")
    return out | values


def _sealed(ring, fields: dict[str, str | None], *, v1: bool = False, contract: str = ROSTER) -> bytes:  # type: ignore[no-untyped-def]
    columns = {f: pa.array([v], pa.string()) for f, v in fields.items()}
    plain = (row_plaintext_v1 if v1 else row_plaintext)(columns)
    return seal_rows(ring, contract, plain, v1=v1)[0].as_py()


def _fill_under_0023(engine: sa.Engine, settings: Settings) -> dict[str, str]:
    """Roster rows as 0023's code wrote them: hex digests, text batch ids, sealed rows in 0021's framing."""
    ring = load_keyring(settings)
    roster = Protector(CATALOG[ROSTER], ring)
    r = sa.Table(CATALOG[ROSTER].table, sa.MetaData(), autoload_with=engine)
    tokens = {}
    with engine.begin() as conn:
        for i, (idn, name) in enumerate(PEOPLE):
            tokens[idn] = roster.token(pa.array([idn]))[0].as_py()
            sealed = _sealed(ring, {"id_number": idn, "name": name, "phone": "" if i == 0 else None}, v1=True)
            conn.execute(
                r.insert().values(
                    _row(
                        r,
                        id_number_token=bytes.fromhex(tokens[idn]),
                        _batch_id=BATCH,
                        _row_digest=f"{i:064x}",
                        _sealed=sealed,
                    )
                    | {"district_code": "430102", "status": "active"}
                )
            )
    return tokens


def _column_types(conn: sa.Connection, table: str) -> dict[str, str]:
    return {c["name"]: str(c["type"]) for c in sa.inspect(conn).get_columns(table)}


@pytest.mark.parametrize("backend", BACKENDS)
def test_0024_round_trip_with_data(backend, tmp_path, request):
    url = request.getfixturevalue("pg_clean_url") if backend == "postgres" else None
    settings = _settings(tmp_path, url)
    engine = connect(settings)
    length = "octet_length" if backend == "postgres" else "length"
    try:
        migrate(engine, settings, revision="0023")
        tokens = _fill_under_0023(engine, settings)
        migrate(engine, settings)
        roster = dataset_table(CATALOG[ROSTER], sa.MetaData())
        protector = Protector(CATALOG[ROSTER], load_keyring(settings))
        with engine.begin() as conn:
            sizes = conn.execute(sa.text(f"SELECT DISTINCT {length}(_row_digest) FROM {roster.name}")).scalars()
            assert list(sizes) == [32]
            types = _column_types(conn, roster.name)
            assert types["_batch_id"] == ("UUID" if backend == "postgres" else "VARCHAR(36)")
            stored = conn.execute(sa.select(roster.c.id_number_token, roster.c._row_digest, roster.c._batch_id))
            assert sorted(stored.all()) == sorted((tokens[i], f"{n:064x}", BATCH) for n, (i, _) in enumerate(PEOPLE))
            # the old rows were left in 0021's framing, and still open; a new row takes the short one
            old = dict(conn.execute(sa.select(roster.c.id_number_token, roster.c._sealed)).all())
            assert {bytes(v)[0] for v in old.values()} == {0x01}
            assert [protector.decrypt(old[tokens[i]], "name") for i, _ in PEOPLE] == [n for _, n in PEOPLE]
            assert protector.decrypt(old[tokens[PEOPLE[0][0]]], "phone") == ""
            assert protector.decrypt(old[tokens[PEOPLE[1][0]]], "phone") is None
            new = protector.seal(pa.table({"id_number": ["430104200001010011"], "name": ["赵一"], "phone": [None]}))
            conn.execute(
                roster.insert().values(
                    _row(roster, id_number_token="ab" * 32, _batch_id=BATCH, _row_digest="cd" * 32, _sealed=new[0])
                    | {"district_code": "430102", "status": "active"}
                )
            )
            assert new[0].as_py()[0] == 0x03
            # a row compared by its digest: the hex Python holds finds the stored bytes
            found = conn.execute(sa.select(sa.func.count()).where(roster.c._row_digest == "cd" * 32)).scalar_one()
            assert found == 1

        command.downgrade(db.alembic_config(settings, engine), "0023")
        ring = load_keyring(settings)
        with engine.connect() as conn:
            back = conn.execute(sa.text(f"SELECT _row_digest, _batch_id, _sealed FROM {roster.name}")).all()
        assert sorted(d for d, _, _ in back) == sorted([f"{n:064x}" for n in range(3)] + ["cd" * 32])
        assert {b for _, b, _ in back} == {BATCH}
        assert {bytes(s)[0] for _, _, s in back} == {0x01}  # the short row sealed again in 0021's framing
        names = sorted(open_row(ring, ROSTER, s, "name") for _, _, s in back)
        assert names == sorted([n for _, n in PEOPLE] + ["赵一"])

        migrate(engine, settings)
        with engine.connect() as conn:
            again = conn.execute(sa.select(roster.c._row_digest)).scalars().all()
        assert sorted(again) == sorted([f"{n:064x}" for n in range(3)] + ["cd" * 32])
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_0024_refuses_a_batch_id_that_is_not_a_uuid_and_changes_nothing(pg_clean_url, tmp_path):
    settings = _settings(tmp_path, pg_clean_url)
    engine = connect(settings)
    try:
        migrate(engine, settings, revision="0023")
        _fill_under_0023(engine, settings)
        with engine.begin() as conn:
            conn.execute(sa.text(f"UPDATE {CATALOG[ROSTER].table} SET _batch_id = 'not-a-uuid'"))
        with pytest.raises(Exception, match="is not a uuid") as caught:
            migrate(engine, settings)
        assert "not-a-uuid" not in str(caught.value)
        with engine.connect() as conn:
            version = conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar_one()
            types = _column_types(conn, CATALOG[ROSTER].table)
        assert version == "0023" and types["_row_digest"] == "VARCHAR(64)"
    finally:
        engine.dispose()


# --------------------------------------------------------------------------- the short framing


def test_short_framing_keeps_null_absent_empty_present_and_opens_only_the_field_asked():
    ring = generate_keyring()
    sealed = _sealed(ring, {"id_number": PEOPLE[0][0], "name": "", "phone": None, "address": "长" * 60})
    assert sealed[0] == 0x03
    assert open_row(ring, ROSTER, sealed, "id_number") == PEOPLE[0][0]
    assert open_row(ring, ROSTER, sealed, "name") == ""
    assert open_row(ring, ROSTER, sealed, "phone") is None
    assert open_row(ring, ROSTER, sealed, "address") == "长" * 60  # 180 bytes: a two-byte length
    assert open_row(ring, ROSTER, sealed, "nickname") is None
    plain = row_plaintext({"a": pa.array(["xy", None]), "b": pa.array([None, None])}).to_pylist()
    assert plain == [sealed_field_id("a") + b"\x02xy", None]  # 2 + 1 + 2 bytes; a row of nulls: no message


def test_short_framing_is_smaller_than_0021s():
    values = {"id_number": PEOPLE[0][0], "name": "王小明", "phone": "13812345678", "address": "长沙市芙蓉区某路1号"}
    columns = {f: pa.array([v], pa.string()) for f, v in values.items()}
    short, old = row_plaintext(columns)[0].as_py(), row_plaintext_v1(columns)[0].as_py()
    assert len(old) - len(short) == 28  # per field: its name and two colons against 2 bytes of id (lengths alike)


def test_a_long_value_round_trips_through_a_multi_byte_length():
    ring = generate_keyring()
    for size in (127, 128, 16383, 16384, 70000):
        sealed = _sealed(ring, {"name": "x" * size, "phone": "1"})
        assert open_row(ring, ROSTER, sealed, "name") == "x" * size and open_row(ring, ROSTER, sealed, "phone") == "1"


def test_a_row_of_an_older_contract_version_opens_under_a_newer_one_and_the_reverse():
    ring = generate_keyring()
    older = _sealed(ring, {"id_number": PEOPLE[1][0], "name": "李娜"})
    newer = _sealed(ring, {"id_number": PEOPLE[1][0], "name": "李娜", "guardian_name": "李大"})
    assert open_row(ring, ROSTER, older, "guardian_name") is None  # the field the newer version adds: absent
    assert open_row(ring, ROSTER, newer, "guardian_name") == "李大"
    assert open_row(ring, ROSTER, newer, "name") == open_row(ring, ROSTER, older, "name") == "李娜"


def test_old_format_rows_still_open():
    ring = generate_keyring()
    old = _sealed(ring, {"id_number": PEOPLE[2][0], "name": "a:3:b", "phone": ""}, v1=True)
    assert old[0] == 0x01
    assert open_row(ring, ROSTER, old, "name") == "a:3:b" and open_row(ring, ROSTER, old, "phone") == ""
    assert open_row(ring, ROSTER, old, "address") is None


def test_a_tampered_or_reformatted_row_is_refused():
    ring = generate_keyring()
    sealed = _sealed(ring, {"id_number": PEOPLE[0][0], "name": "王小明"})
    for at in (5, 17, 20, len(sealed) - 1):  # nonce, first ciphertext byte (a field id), body, tag
        with pytest.raises(InvalidTag):
            open_row(ring, ROSTER, sealed[:at] + bytes([sealed[at] ^ 1]) + sealed[at + 1 :], "name")
    with pytest.raises(InvalidTag):  # claims 0021's framing: the head is bound, so the tag fails
        open_row(ring, ROSTER, b"\x01" + sealed[1:], "name")
    with pytest.raises(InvalidTag):  # sealed for the roster, opened as another contract
        open_row(ring, "health.population", sealed, "name")


def _clashing_names() -> tuple[str, str]:
    seen: dict[bytes, str] = {}
    for i in range(10**6):
        name = f"field_{i}"
        other = seen.setdefault(sealed_field_id(name), name)
        if other != name:
            return other, name
    raise AssertionError("no clash found")


def test_a_contract_with_two_encrypted_fields_of_one_id_is_refused():
    doc = yaml.safe_load((ROOT / "contracts" / "civil_affairs" / "low_income_roster.yaml").read_text("utf-8"))
    a, b = _clashing_names()
    for name in (a, b):
        doc["schema"][0]["properties"].append(
            {
                "name": name,
                "logicalType": "string",
                "classification": "sensitive",
                "customProperties": [{"property": "lidmProtection", "value": ["encrypt"]}],
            }
        )
    with pytest.raises(ContractError, match=f"{a} and {b} share the 2-byte id"):
        parse_contract(doc, source="roster.yaml")
    doc["schema"][0]["properties"][-1]["customProperties"] = [{"property": "lidmProtection", "value": ["clear"]}]
    parse_contract(doc, source="roster.yaml")  # only encrypted fields are named inside a sealed row
