"""Protection and keys: tokens join, ciphertexts decrypt only for their field, masks hide, keys never print."""

from __future__ import annotations

import os
import stat

import pyarrow as pa
import pytest

from lidm.contracts import load_catalog
from lidm.errors import KeyringError
from lidm.keys import Keyring, generate_keyring, load_keyring, write_keyring
from lidm.protect import Protector, mask

ID = "430102199003071234"


@pytest.fixture
def roster():
    return load_catalog()["civil_affairs.low_income_roster"]


@pytest.fixture
def population():
    return load_catalog()["health.population"]


def test_token_is_keyed_and_identical_across_feeds(roster, population):
    ring = generate_keyring()
    a = Protector(roster, ring).token(pa.array([ID]))[0].as_py()
    b = Protector(population, ring).token(pa.array([ID]))[0].as_py()
    other = Protector(roster, generate_keyring()).token(pa.array([ID]))[0].as_py()
    assert a == b and a != other and len(a) == 64 and ID not in a


def test_encryption_round_trips_and_is_bound_to_its_field(roster):
    p = Protector(roster, generate_keyring())
    ct = p.encrypt(pa.array([ID, None]), "id_number").to_pylist()
    assert ct[1] is None and ID not in ct[0] and ct[0].startswith(p.keyring.encrypt.active + ":")
    assert p.decrypt(ct[0], "id_number") == ID
    with pytest.raises(Exception):  # noqa: B017 - cryptography's InvalidTag
        p.decrypt(ct[0], "name")


def test_masks(roster):
    # Issue 15: the city only, whatever else is granted beside it (lidm.contracts.disclosure says why).
    assert mask(roster.field("id_number"), pa.array([ID, None])).to_pylist() == ["4301" + "*" * 14, None]
    names = pa.array(["王小明", "李明", "欧阳娜娜", "李", None])
    assert mask(roster.field("name"), names).to_pylist() == ["王*", "李*", "欧*", "*", None]
    assert mask(roster.field("phone"), pa.array(["13812345678"])).to_pylist() == ["138****5678"]


def test_protect_emits_only_policy_columns(roster):
    from lidm.validate import Validator

    v = Validator(roster, "4301")
    row = {
        "id_number": ID,
        "name": "王小明",
        "household_id": "MZ4301020000001",
        "relation_to_head": "head",
        "category": "dibao",
        "categories": "dibao,return_risk",
        "district_code": "430102",
        "street_code": "430102001",
        "approval_date": "2024-01-05",
        "termination_date": None,
        "monthly_amount": "650.00",
        "status": "active",
        "exit_reason": None,
        "housing_difficulty": None,
        "urban_rural": "urban",
        "phone": "13812345678",
        "updated_at": "2026-11-27 08:00:00",
    }
    table = pa.table({k: pa.array([v_], pa.string()) for k, v_ in row.items()} | {"__row": pa.array([1])})
    out = Protector(roster, generate_keyring()).protect(v.validate(table).valid)
    assert "id_number" not in out.column_names and "name" not in out.column_names
    flat = str(out.to_pylist())
    for secret in (ID, "王小明", "13812345678", "MZ4301020000001"):
        assert secret not in flat


def test_keyring_file_is_private_and_never_overwritten(tmp_path):
    path = tmp_path / "k" / "keyring.json"
    ring = generate_keyring()
    write_keyring(ring, path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    with pytest.raises(KeyringError, match="refusing to overwrite"):
        write_keyring(generate_keyring(), path)
    from lidm.config import Settings

    loaded = load_keyring(Settings(keyring=path))
    assert loaded.token.active_key == ring.token.active_key


def test_keyring_repr_shows_ids_not_secrets():
    ring = generate_keyring()
    text = repr(ring) + str(ring)
    assert ring.token.active in text
    for ks in (ring.token, ring.encrypt, ring.sign):
        assert ks.active_key.hex() not in text and ks.active_key.decode("latin-1") not in text


def test_missing_keyring_says_what_to_do(tmp_path):
    from lidm.config import Settings

    with pytest.raises(KeyringError, match="lidm keys init"):
        load_keyring(Settings(home=tmp_path))


def test_malformed_keyring_is_refused():
    with pytest.raises(KeyringError):
        Keyring.from_dict({"token": {"active": "a", "keys": {"a": "c2hvcnQ="}}})
