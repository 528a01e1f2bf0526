"""Protection and keys: tokens join, a sealed row opens only for its contract and only to the field asked for,
masks hide, keys never print."""

from __future__ import annotations

import os
import stat

import pyarrow as pa
import pytest
from cryptography.exceptions import InvalidTag

from lidm.contracts import load_catalog
from lidm.errors import KeyringError
from lidm.keys import Keyring, fingerprint, generate_keyring, load_keyring, write_keyring
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


def _sealed(p: Protector, **values: str | None) -> bytes | None:
    """One row of `p`'s contract with these encrypted fields set (the others null), sealed."""
    names = [f.name for f in p.contract.sealed_fields]
    return p.seal(pa.table({n: pa.array([values.get(n)], pa.string()) for n in names}))[0].as_py()


def test_a_sealed_row_opens_to_the_field_asked_for_only(roster):
    p = Protector(roster, generate_keyring())
    sealed = _sealed(p, id_number=ID, name="王小明", phone="")
    assert isinstance(sealed, bytes) and ID.encode() not in sealed and "王小明".encode() not in sealed
    assert sealed[0] == 0x03 and sealed[1:5] == fingerprint(p.keyring.encrypt.active)
    assert p.decrypt(sealed, "id_number") == ID
    assert p.decrypt(sealed, "name") == "王小明"
    assert p.decrypt(sealed, "phone") == ""  # empty is kept, null is absent
    assert p.decrypt(sealed, "household_id") is None
    assert _sealed(p) is None  # no encrypted value at all: no message


def test_sealed_row_plaintext_is_exact_whatever_the_values_hold(roster):
    p = Protector(roster, generate_keyring())
    tricky = "a:3:b\x1f李:12:"  # looks like the framing itself
    sealed = _sealed(p, id_number=tricky, name="x")
    assert p.decrypt(sealed, "id_number") == tricky and p.decrypt(sealed, "name") == "x"


def test_a_row_sealed_for_one_contract_does_not_open_as_another(roster, population):
    ring = generate_keyring()
    sealed = _sealed(Protector(roster, ring), id_number=ID)
    with pytest.raises(InvalidTag):
        Protector(population, ring).decrypt(sealed, "id_number")


def test_a_tampered_head_or_body_is_refused(roster):
    p = Protector(roster, generate_keyring())
    sealed = _sealed(p, id_number=ID)
    with pytest.raises(KeyringError, match="fingerprint"):  # the key fingerprint changed: no such key
        p.decrypt(sealed[:1] + bytes([sealed[1] ^ 1]) + sealed[2:], "id_number")
    with pytest.raises(KeyringError, match="format"):
        p.decrypt(b"\x7f" + sealed[1:], "id_number")
    with pytest.raises(KeyringError, match="sm4-gcm"):  # the format byte claims the other algorithm
        p.decrypt(b"\x04" + sealed[1:], "id_number")
    for at in (5, 20, len(sealed) - 1):  # nonce, ciphertext, tag
        with pytest.raises(InvalidTag):
            p.decrypt(sealed[:at] + bytes([sealed[at] ^ 1]) + sealed[at + 1 :], "id_number")


def _clashing_ids() -> tuple[str, str]:
    """Two key ids with one 4-byte fingerprint: a birthday search, some 80,000 hashes."""
    seen: dict[bytes, str] = {}
    for i in range(10**7):
        kid = f"enc-{i}"
        other = seen.setdefault(fingerprint(kid), kid)
        if other != kid:
            return other, kid
    raise AssertionError("no clash found")


def test_keyring_refuses_two_encryption_keys_with_one_fingerprint():
    data = generate_keyring().to_dict()
    secret = data["encrypt"]["keys"][data["encrypt"]["active"]]
    a, b = _clashing_ids()
    both = {"active": a, "keys": {a: secret, b: secret}, "algorithms": {a: "aes-256-gcm", b: "aes-256-gcm"}}
    with pytest.raises(KeyringError, match=f"{a} and {b} have the same fingerprint"):
        Keyring.from_dict(data | {"encrypt": both})
    algs = {"algorithms": {a: "hmac-sha256", b: "hmac-sha256"}}
    Keyring.from_dict(data | {"token": both | algs})  # tokens name no key by fingerprint


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
    assert out.column_names[-1] == "_sealed" and not any(c.endswith("_enc") for c in out.column_names)
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
