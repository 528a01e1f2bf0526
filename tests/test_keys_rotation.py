"""Key rotation and the commercial-cryptography profile: old data stays readable, tokens stay joinable."""

from __future__ import annotations

import base64
import json
import os
import stat

import pyarrow as pa
import pytest
import sqlalchemy as sa
from _db import query
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import hmac as chmac
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from typer.testing import CliRunner

from lidm import manifest
from lidm.cli import app
from lidm.config import Settings
from lidm.contracts import load_catalog
from lidm.errors import KeyringError
from lidm.keys import Keyring, fingerprint, generate_keyring, load_keyring, rotate, write_keyring
from lidm.protect import Protector, unseal

ID = "430102199003071234"
runner = CliRunner()


@pytest.fixture
def roster():
    return load_catalog()["civil_affairs.low_income_roster"]


def _reload(ring: Keyring) -> Keyring:
    return Keyring.from_dict(json.loads(json.dumps(ring.to_dict())))


def _seal(p: Protector, value: str | None) -> bytes | None:
    """A row of the roster with this id number (its other encrypted fields null), sealed."""
    return p.seal(
        pa.table(
            {
                f.name: pa.array([value if f.name == "id_number" else None], pa.string())
                for f in p.contract.sealed_fields
            }
        )
    )[0].as_py()


def test_encrypt_rotation_keeps_old_rows_readable_and_tokens_equal(roster):
    old = generate_keyring()
    before = Protector(roster, old)
    ct_old = _seal(before, ID)
    new = _reload(rotate(old, "encrypt"))
    after = Protector(roster, new)
    ct_new = _seal(after, ID)
    assert new.encrypt.active != old.encrypt.active and set(old.encrypt.keys) < set(new.encrypt.keys)
    assert ct_old[:5] == b"\x03" + fingerprint(old.encrypt.active)  # aes-256-gcm, the key of its day
    assert ct_new[:5] == b"\x03" + fingerprint(new.encrypt.active)
    assert after.decrypt(ct_old, "id_number") == after.decrypt(ct_new, "id_number") == ID
    assert before.token(pa.array([ID])).to_pylist() == after.token(pa.array([ID])).to_pylist()
    again = rotate(new, "encrypt")  # a second rotation the same day gets its own id
    assert len(again.encrypt.keys) == 3 and Protector(roster, again).decrypt(ct_old, "id_number") == ID


def test_sign_rotation_keeps_old_signatures_verifiable():
    old = generate_keyring()
    body, sig_old = manifest.sign({"batch": 1}, old)
    new = _reload(rotate(old, "sign"))
    body_new, sig_new = manifest.sign({"batch": 2}, new)
    assert sig_new.split(":")[0] == new.sign.active != old.sign.active
    assert manifest.verify(body, sig_old, new) and manifest.verify(body_new, sig_new, new)
    assert not manifest.verify(body_new, sig_new, old)  # the old keyring does not know the new key
    assert not manifest.verify(body.replace("1", "3"), sig_old, new)


def test_data_from_before_algorithms_were_recorded_still_opens(roster):
    """Version-1 keyrings (no algorithms) and "kid:base64" ciphertexts / signatures are standard-profile data."""
    ring = generate_keyring()
    v1 = ring.to_dict()
    for purpose in ("token", "encrypt", "sign"):
        del v1[purpose]["algorithms"]
    legacy = Keyring.from_dict(v1)
    nonce = os.urandom(12)
    aad = b"civil_affairs.low_income_roster/id_number"
    blob = base64.b64encode(nonce + AESGCM(ring.encrypt.active_key).encrypt(nonce, ID.encode(), aad)).decode()
    assert unseal(legacy, f"{ring.encrypt.active}:{blob}", aad) == ID.encode()  # what migration 0021 opens
    body, sig = manifest.sign({"x": 1}, ring)
    kid, _alg, b64 = sig.split(":")
    assert manifest.verify(body, f"{kid}:{b64}", legacy)


def test_token_key_is_never_rotated_in_place(tmp_path):
    with pytest.raises(KeyringError, match="retokenize"):
        rotate(generate_keyring(), "token")
    path = tmp_path / "keyring.json"
    write_keyring(generate_keyring(), path)
    out = runner.invoke(app, ["keys", "rotate", "--purpose", "token", "--path", str(path)])
    assert out.exit_code == 2 and "retokenize" in out.output


def test_cli_rotate_adds_a_key_and_keeps_the_file_private(tmp_path):
    path = tmp_path / "keyring.json"
    ring = generate_keyring()
    write_keyring(ring, path)
    out = runner.invoke(app, ["keys", "rotate", "--purpose", "encrypt", "--path", str(path)])
    assert out.exit_code == 0, out.output
    rotated = load_keyring(Settings(keyring=path))
    assert set(rotated.encrypt.keys) > set(ring.encrypt.keys) and rotated.encrypt.active != ring.encrypt.active
    assert rotated.token.keys == ring.token.keys
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert rotated.encrypt.active_key.hex() not in out.output


def test_sm_profile_round_trips_and_tokens_differ_from_standard(roster):
    sm = generate_keyring("sm")
    p = Protector(roster, sm)
    ct = _seal(p, ID)
    assert _seal(p, None) is None and ct[:5] == b"\x04" + fingerprint(sm.encrypt.active) and ID.encode() not in ct
    assert p.decrypt(ct, "id_number") == ID and p.decrypt(ct, "name") is None
    with pytest.raises(InvalidTag):  # bound to its contract
        Protector(load_catalog()["health.population"], sm).decrypt(ct, "id_number")
    # Same token key bytes, other algorithm: another token (HMAC-SM3, not HMAC-SHA256).
    std = generate_keyring().to_dict()
    std["token"] = sm.to_dict()["token"] | {"algorithms": {sm.token.active: "hmac-sha256"}}
    same_key_standard = Keyring.from_dict(std)
    tok_sm = p.token(pa.array([ID]))[0].as_py()
    tok_std = Protector(roster, same_key_standard).token(pa.array([ID]))[0].as_py()
    h = chmac.HMAC(sm.token.active_key, hashes.SM3())
    h.update(ID.encode())
    assert tok_sm == h.finalize().hex() and tok_sm != tok_std and len(tok_sm) == 64
    body, sig = manifest.sign({"x": 1}, sm)
    assert manifest.verify(body, sig, _reload(sm))


def test_a_keyring_of_another_profile_than_configured_is_refused(tmp_path):
    path = tmp_path / "keyring.json"
    write_keyring(generate_keyring("sm"), path)
    assert load_keyring(Settings(keyring=path, crypto_profile="sm")).profile == "sm"
    with pytest.raises(KeyringError, match="LIDM_CRYPTO_PROFILE=standard"):
        load_keyring(Settings(keyring=path, crypto_profile="standard"))
    with pytest.raises(KeyringError, match="unknown crypto profile"):
        generate_keyring("gost")


def test_a_whole_feed_runs_under_the_sm_profile(tmp_path, monkeypatch):
    from lidm_samples.demo import run_demo

    home = tmp_path / "sm"
    home.mkdir()
    write_keyring(generate_keyring("sm"), home / "keyring.json")
    monkeypatch.setenv("LIDM_CRYPTO_PROFILE", "sm")
    _sources, results = run_demo(home, size=300, bad=1, feeds=["health.population"])
    (r,) = results
    assert r.status == "loaded", r.reason
    assert r.extracted == r.loaded + r.quarantined and r.quarantined >= 1
    ring = load_keyring(Settings(keyring=home / "keyring.json"))
    url = f"sqlite:///{home / 'central.db'}"
    engine = sa.create_engine(url)
    cols = [c["name"] for c in sa.inspect(engine).get_columns("health_population")]
    engine.dispose()
    assert "_sealed" in cols and not any(c.endswith("_enc") for c in cols) and any(c.endswith("_token") for c in cols)
    row = query(url, "SELECT id_number_token, _sealed FROM health_population WHERE _sealed IS NOT NULL")[0]
    assert len(row[0]) == 32  # the token's bytes
    assert row[1][0] == 0x04 and row[1][1:5] == fingerprint(ring.encrypt.active)  # sm4-gcm, the active key
    ((payload,),) = query(url, "SELECT payload FROM lidm_quarantine LIMIT 1")
    assert payload.startswith(f"{ring.encrypt.active}:sm4-gcm:")
    p = Protector(load_catalog()["health.population"], ring)
    assert len(p.decrypt(row[1], "id_number")) == 18
    ((body, signature),) = query(url, "SELECT manifest, signature FROM lidm_batch WHERE status = 'loaded'")
    assert manifest.verify(body, signature, ring)
