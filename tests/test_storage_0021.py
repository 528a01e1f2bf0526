"""Issue 21, stored bytes: binary tokens and one sealed message per row, and migration 0021 converting a database
filled under 0020 (hex tokens, per-field ciphertexts) in place, on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import io
import re
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pytest
import sqlalchemy as sa

from lidm.central import connect, migrate
from lidm.central.schema import dataset_table, quarantine, warning_state
from lidm.config import Settings
from lidm.contracts import load_catalog
from lidm.keys import generate_keyring, load_keyring, write_keyring
from lidm.protect import Protector, seal

CATALOG = load_catalog()
ROSTER, WARNING = "civil_affairs.low_income_roster", "platform.warning"
PEOPLE = [("430102199003071234", "王小明"), ("430102198511230017", "李娜"), ("430103197001015511", "欧阳娜娜")]
BATCH = "b0000000-0000-4000-8000-000000000021"  # a batch id as lidm makes one (a uuid: migration 0024)
BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


def _settings(tmp_path: Path, url: str | None, *, keyring: bool = True) -> Settings:
    path = tmp_path / "keys" / "keyring.json"
    if keyring and not path.exists():
        write_keyring(generate_keyring(), path)
    return Settings(home=tmp_path, central_url=url, keyring=path)


def _dummy(column: sa.Column) -> object:
    """A value for a required column the test does not care about."""
    t = column.type
    if column.name == "_row_digest":  # a keyed digest's hex, as the pipeline writes it
        return "d" * 64
    if isinstance(t, sa.DateTime):
        return datetime(2026, 11, 27, 8, 0)
    if isinstance(t, sa.Date):
        return date(2026, 1, 5)
    if isinstance(t, sa.Numeric):
        return Decimal("650")
    if isinstance(t, sa.Integer):
        return 1
    if isinstance(t, sa.Boolean):
        return False
    return "x"


def _row(t: sa.Table, **values: object) -> dict[str, object]:
    out = {c.name: _dummy(c) for c in t.columns if not c.nullable and c.name not in values}
    return out | values


def _fill_under_0020(engine: sa.Engine, settings: Settings) -> dict[str, str]:
    """Rows as 0020's code wrote them: hex tokens, one "kid:alg:base64" ciphertext per encrypted field."""
    from lidm.keys import load_keyring

    ring = load_keyring(settings)
    roster = Protector(CATALOG[ROSTER], ring)
    md = sa.MetaData()
    r = sa.Table(CATALOG[ROSTER].table, md, autoload_with=engine)
    w = sa.Table("platform_warning", md, autoload_with=engine)
    ws = sa.Table("lidm_warning_state", md, autoload_with=engine)
    q = sa.Table("lidm_quarantine", md, autoload_with=engine)
    b = sa.Table("lidm_batch", md, autoload_with=engine)
    tokens = {}
    with engine.begin() as conn:
        conn.execute(b.insert().values(_row(b, batch_id=BATCH, status="loaded", started_at=datetime(2026, 11, 27))))
        for i, (idn, name) in enumerate(PEOPLE):
            tok = roster.token(pa.array([idn]))[0].as_py()
            tokens[idn] = tok
            enc = {
                "id_number_enc": seal(ring, idn.encode(), f"{ROSTER}/id_number".encode()),
                "name_enc": seal(ring, name.encode(), f"{ROSTER}/name".encode()),
                "phone_enc": None,  # null stays absent
            }
            household = roster.token(pa.array([f"H{i}"]))[0].as_py()
            conn.execute(
                r.insert().values(
                    _row(r, id_number_token=tok, household_id_token=household, _batch_id=BATCH, **enc)
                    | {"district_code": "430102", "status": "active"}
                )
            )
            # warnings copy the subject's ciphertexts, bound to the roster; the last one predates sealed_by
            wid = f"W{i}"
            conn.execute(
                w.insert().values(
                    _row(w, warning_id=wid, id_number_token=tok, _batch_id="r" * 36)
                    | {"target_consumer": "civil_affairs", "target_department": "civil_affairs", "status": "raised"}
                    | {"id_number_enc": enc["id_number_enc"], "name_enc": enc["name_enc"], "district_code": "430102"}
                    | {"hardship_type": "illness", "urgency": "high", "action_level": "city", "rule_id": "r1"}
                )
            )
            sealed_by = ROSTER if i < 2 else None
            conn.execute(
                ws.insert().values(_row(ws, warning_id=wid, subject_token=tok, sealed_by=sealed_by, rule_id="r1"))
            )
        conn.execute(
            q.insert().values(
                _row(q, batch_id=BATCH, key_token=tokens[PEOPLE[0][0]], payload_kind="raw_enc", reason="bad")
            )
        )
    return tokens


@pytest.mark.parametrize("backend", BACKENDS)
def test_0021_converts_a_database_filled_under_0020(backend, tmp_path, request, monkeypatch):
    from lidm.monitor.push import push_warnings
    from lidm.reidentify import reidentify

    url = request.getfixturevalue("pg_clean_url") if backend == "postgres" else None
    settings = _settings(tmp_path, url)
    engine = connect(settings)
    try:
        migrate(engine, settings, revision="0020")
        tokens = _fill_under_0020(engine, settings)
        migrate(engine, settings)

        roster = dataset_table(CATALOG[ROSTER], sa.MetaData())
        with engine.connect() as conn:
            cols = {c["name"] for c in sa.inspect(conn).get_columns(roster.name)}
            assert "_sealed" in cols and not any(c.endswith("_enc") for c in cols)
            length = "octet_length" if backend == "postgres" else "length"
            sizes = conn.execute(sa.text(f"SELECT DISTINCT {length}(id_number_token) FROM {roster.name}")).scalars()
            assert list(sizes) == [32]
            assert sorted(conn.execute(sa.select(roster.c.id_number_token)).scalars()) == sorted(tokens.values())
            assert conn.execute(sa.select(quarantine.c.key_token)).scalar_one() == tokens[PEOPLE[0][0]]
            bound = dict(conn.execute(sa.select(warning_state.c.warning_id, warning_state.c.sealed_by)).all())
        assert bound == {"W0": ROSTER, "W1": ROSTER, "W2": ROSTER}  # the one without was given its binding

        keys = [tokens[idn] for idn, _ in PEOPLE]
        ask = {"consumer": "civil_affairs", "purpose": "payment check 0021", "keys": keys}
        ids = reidentify(settings, dataset=ROSTER, field="id_number", **ask)
        names = reidentify(settings, dataset=ROSTER, field="name", **ask)
        phones = reidentify(settings, dataset=ROSTER, field="phone", **ask)
        assert [v.value for v in ids] == [idn for idn, _ in PEOPLE]
        assert [v.value for v in names] == [name for _, name in PEOPLE]
        assert [v.value for v in phones] == [None, None, None]
        opened = reidentify(settings, dataset=WARNING, field="name", **ask | {"keys": ["W0", "W1", "W2"]})
        assert [v.value for v in opened] == [name for _, name in PEOPLE]

        # and back: 0020's shape again, every value still opening where 0020 looked for it
        from alembic import command

        from lidm.central import db
        from lidm.protect import unseal

        command.downgrade(db.alembic_config(settings, engine), "0020")
        with engine.connect() as conn:
            back = conn.execute(sa.text(f"SELECT id_number_token, name_enc FROM {roster.name}")).all()
            warned = conn.execute(sa.text("SELECT warning_id, id_number_enc FROM platform_warning")).all()
        assert sorted(t for t, _ in back) == sorted(tokens.values())
        ring = load_keyring(settings)
        assert sorted(unseal(ring, e, f"{ROSTER}/name".encode()).decode() for _, e in back) == sorted(
            n for _, n in PEOPLE
        )
        assert {unseal(ring, e, f"{ROSTER}/id_number".encode()).decode() for _, e in warned} == {i for i, _ in PEOPLE}
        migrate(engine, settings)

        push_warnings(settings, departments=["civil_affairs"], now=datetime(2026, 12, 1, 9, 0))
        outbox = tmp_path / "channels" / "civil_affairs" / "outbox"
        (sent,) = [p for p in outbox.glob("warnings_*.csv") if not p.name.endswith((".zh.csv", ".answer.csv"))]
        rows = list(csv.DictReader(io.StringIO(sent.read_text("utf-8-sig"))))
        assert sorted((r["id_number"], r["name"]) for r in rows) == sorted(PEOPLE)
    finally:
        engine.dispose()


@pytest.mark.parametrize("backend", BACKENDS)
def test_0021_without_a_keyring_refuses_and_changes_nothing(backend, tmp_path, request):
    url = request.getfixturevalue("pg_clean_url") if backend == "postgres" else None
    settings = _settings(tmp_path, url)
    engine = connect(settings)
    try:
        migrate(engine, settings, revision="0020")
        _fill_under_0020(engine, settings)
        keyless = settings.model_copy(update={"keyring": tmp_path / "nowhere.json"})
        with pytest.raises(Exception, match="needs the keyring") as caught:
            migrate(engine, keyless)
        for idn, name in PEOPLE:
            assert idn not in str(caught.value) and name not in str(caught.value)
        with engine.connect() as conn:
            cols = {c["name"] for c in sa.inspect(conn).get_columns(CATALOG[ROSTER].table)}
            version = conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar_one()
        assert "id_number_enc" in cols and "_sealed" not in cols and version == "0020"
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_stored_tokens_are_32_bytes_and_the_key_index_is_half(pg_clean_url, tmp_path):
    """The same 2,000 tokens as 64-character text (0020's shape) and as bytes: the key index shrinks by a third and
    more."""
    settings = _settings(tmp_path, pg_clean_url)
    engine = connect(settings)
    try:
        migrate(engine, settings)
        tokens = [f"{i:064x}" for i in range(2000)]
        with engine.begin() as conn:
            conn.execute(sa.text("CREATE TABLE as_text (t varchar(64) PRIMARY KEY)"))
            conn.execute(sa.text("INSERT INTO as_text VALUES (:t)"), [{"t": t} for t in tokens])
            table = dataset_table(CATALOG["health.population"], sa.MetaData())
            conn.execute(
                table.insert(),
                [_row(table, id_number_token=t, _batch_id=BATCH, _row_digest="d", gender="1") for t in tokens],
            )
            size = "SELECT pg_relation_size(:i)"
            text_index = conn.execute(sa.text(size), {"i": "as_text_pkey"}).scalar_one()
            bytes_index = conn.execute(sa.text(size), {"i": f"{table.name}_pkey"}).scalar_one()
            lengths = conn.execute(sa.text(f"SELECT DISTINCT octet_length(id_number_token) FROM {table.name}"))
            assert lengths.scalars().all() == [32]
        # the key halves (33 bytes with its length against 65); each index entry's 8-byte header and 4-byte line
        # pointer, and the alignment to 8, stay: 52 bytes an entry instead of 84
        assert bytes_index <= 0.7 * text_index, (bytes_index, text_index)
    finally:
        engine.dispose()


def _sql_of_0020(monkeypatch: pytest.MonkeyPatch) -> None:
    """What `grants apply` registered before 0021: tokens read as the text they then were."""
    from lidm.central import release
    from lidm.central.sqltext import ident

    def pseudonym_sql(column: str, n: int) -> str:
        return f"encode(sha256(:ko_{n} || sha256(:ki_{n} || convert_to({ident(column)}, 'UTF8'))), 'hex')"

    def key_sql(columns) -> str:  # type: ignore[no-untyped-def]
        cols = [f"CAST({ident(c)} AS text)" for c in columns]
        return cols[0] if len(cols) == 1 else f"concat_ws(chr(31), {', '.join(cols)})"

    monkeypatch.setattr(release, "pseudonym_sql", pseudonym_sql)
    monkeypatch.setattr(release, "key_sql", key_sql)


@pytest.mark.postgres
def test_0021_keeps_what_consumers_were_released(pg_clean_url, tmp_path, monkeypatch):
    """Releases made under 0020 keep their pseudonyms and row keys; their statements and triggers now read the
    tokens' hex, so a change after the upgrade re-releases the same row, not a second one."""
    from _db import query

    from lidm.central import release
    from lidm.central.grants import apply
    from lidm.keys import load_keyring

    settings = _settings(tmp_path, pg_clean_url)
    ring = load_keyring(settings)
    engine = connect(settings)
    released = "lidm_civil_affairs.civil_affairs_low_income_roster__released"
    shown = f"SELECT _key, household_id_token FROM {released} ORDER BY _key"
    try:
        migrate(engine, settings, revision="0020")
        tokens = _fill_under_0020(engine, settings)
        with monkeypatch.context() as old:
            _sql_of_0020(old)
            apply(engine, CATALOG, keyring=ring)
        before = query(pg_clean_url, shown)
        assert sorted(k for k, _ in before) == sorted(tokens.values()) and all(len(h) == 64 for _, h in before)

        migrate(engine, settings)
        assert query(pg_clean_url, shown) == before
        registered = query(pg_clean_url, "SELECT select_sql, key_expr FROM lidm_release")
        assert registered and any("encode(" in k for _, k in registered)
        assert not any(re.search(r'CAST\("\w+_token" AS text\)|convert_to\("', s + k) for s, k in registered)
        with engine.begin() as conn:
            t = dataset_table(CATALOG[ROSTER], sa.MetaData())
            conn.execute(t.update().where(t.c.id_number_token == tokens[PEOPLE[0][0]]).values(monthly_amount=700))
            release.sync(conn, ring)
        assert query(pg_clean_url, shown) == before  # the same rows, re-released in place
        amounts = query(pg_clean_url, f"SELECT monthly_amount FROM {released} WHERE _key = '{tokens[PEOPLE[0][0]]}'")
        assert [float(a) for (a,) in amounts] == [700.0]
        apply(engine, CATALOG, keyring=ring)  # today's statements: the releases are rebuilt, the values the same
        assert query(pg_clean_url, shown) == before
    finally:
        engine.dispose()


def test_copy_renders_binary_columns_as_bytea_text_column_wise():
    from lidm.central.copyin import bytea_text, to_csv

    values = pa.array([b"\x00\xff", None, b"", b"abc", None, bytes(range(256))], pa.binary())
    expected = ["\\x00ff", None, "\\x", "\\x616263", None, "\\x" + bytes(range(256)).hex()]
    assert bytea_text(values).to_pylist() == expected
    assert bytea_text(values.slice(1, 3)).to_pylist() == expected[1:4]  # an offset into shared buffers
    table = pa.table({"t": pa.array(["ab" * 32, None]), "s": pa.array([b"\x01", None], pa.binary()), "n": [1, 2]})
    assert to_csv(table, ["t"]) == b'"\\x' + b"ab" * 32 + b'","\\x01",1\n,,2\n'
