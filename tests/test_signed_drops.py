"""Signed drops: the loader checks the department's signature and digests before anything is written.

Every case runs on a local drop folder (SQLite central database) and on the real OpenSSH SFTP server
(PostgreSQL central database).
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import replace
from pathlib import Path

import pytest
from _db import query
from lidm_samples import generate_people, generate_roster, roster_rows, write_roster_drop
from typer.testing import CliRunner

from lidm.cli import app
from lidm.pipeline import run_feed
from lidm.producers import MANIFEST_SUFFIX, SIGNATURE_SUFFIX, sign_drop, write_producer_key
from lidm.registry import get_adapter

FEED = "civil_affairs.low_income_roster"
TABLE = "civil_affairs_low_income_roster"
NAME = "roster_20261127.csv"


class Drop:
    """A drop folder, how the gateway reaches it, and a gateway configured to trust one department key."""

    def __init__(self, folder: Path, url: str, gateway, keys: Path, owner: tuple[int, int] | None) -> None:  # type: ignore[no-untyped-def]
        self.folder, self.url, self.gateway, self.owner = folder, url, gateway, owner
        self.key, public = write_producer_key("civil_affairs", keys / "dept")
        self.rogue_key, _ = write_producer_key("civil_affairs", keys / "rogue")  # never registered
        self.trusted = json.dumps({"civil_affairs": [public]})

    def settings(self, **extra):  # type: ignore[no-untyped-def]
        return self.gateway.settings.model_copy(update={"producer_keys": self.trusted, **extra})

    def place(self, rows, name: str = NAME, *, sign: bool = True, key: Path | None = None, marker: bool = True) -> Path:  # type: ignore[no-untyped-def]
        path = write_roster_drop(self.folder, rows, name=name, marker=False)
        if sign:
            sign_drop(path, key or self.key, FEED)
        if marker:
            self.mark(name)
        return path

    def mark(self, name: str = NAME) -> None:
        (self.folder / f"{name}.ok").write_text("")
        self.chown()

    def chown(self) -> None:
        if self.owner:
            for p in [self.folder, *self.folder.rglob("*")]:
                os.chown(p, *self.owner)

    def run(self, signed: bool = True, **settings):  # type: ignore[no-untyped-def]
        adapter = get_adapter(FEED)
        if signed:
            adapter = replace(adapter, source=replace(adapter.source, signed=True))
        return run_feed(adapter, self.settings(**settings), connections={"civil_affairs_drop": self.url})

    def count(self, sql: str) -> int:
        url = self.gateway.central_url or f"sqlite:///{self.gateway.home / 'central.db'}"
        return query(url, sql)[0][0]

    def assert_nothing_written(self) -> None:
        """Central tables as before: no data row, no quarantine row, no loaded batch; the invariant holds."""
        assert self.count(f"SELECT COUNT(*) FROM {TABLE}") == 0
        assert self.count("SELECT COUNT(*) FROM lidm_quarantine") == 0
        assert self.count("SELECT COUNT(*) FROM lidm_batch WHERE status = 'loaded'") == 0
        assert self.count("SELECT COUNT(*) FROM lidm_batch WHERE extracted <> loaded + quarantined") == 0

    def assert_rejected(self, result, reason: str, name: str = NAME) -> None:  # type: ignore[no-untyped-def]
        assert result.status == "rejected" and f"[{reason}]" in result.reason, result.reason
        assert result.loaded == result.quarantined == 0
        rejected = self.folder / "rejected"
        assert (rejected / name).exists() and f"[{reason}]" in (rejected / f"{name}.reason.txt").read_text()
        assert not (self.folder / name).exists() and not (self.folder / f"{name}.ok").exists()
        assert not (self.folder / f"{name}{MANIFEST_SUFFIX}").exists()


@pytest.fixture(params=["local", "sftp"])
def drop(request, tmp_path):  # type: ignore[no-untyped-def]
    if request.param == "local":
        gateway = request.getfixturevalue("gateway_sqlite")
        folder = tmp_path / "drops"
        folder.mkdir()
        yield Drop(folder, str(folder), gateway, tmp_path, None)
        return
    server = request.getfixturevalue("sftp_server")
    gateway = request.getfixturevalue("gateway_pg")
    name = f"signed_{request.node.name[:40]}".replace("[", "_").replace("]", "")
    folder = server.home / name
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    st = folder.parent.stat()
    d = Drop(folder, server.url(name), gateway, tmp_path, (st.st_uid, st.st_gid))
    d.chown()
    yield d
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def rows():  # type: ignore[no-untyped-def]
    people = generate_people(1000, 31)
    return roster_rows(generate_roster(people, share=0.1, seed=31), bad=2, seed=31).rows


def test_a_valid_signed_drop_loads_and_its_receipt_names_the_producer_key(drop, rows):
    drop.place(rows)
    (r,) = drop.run()
    assert r.status == "loaded", r.reason
    assert r.extracted == len(rows) == r.loaded + r.quarantined
    assert drop.count(f"SELECT COUNT(*) FROM {TABLE}") == r.loaded
    archive = drop.folder / "archive"
    assert {f"{NAME}{MANIFEST_SUFFIX}", f"{NAME}{SIGNATURE_SUFFIX}", f"{NAME}.receipt.json"} <= {
        p.name for p in archive.iterdir()
    }
    receipt = json.loads((archive / f"{NAME}.receipt.json").read_text())
    signed = json.loads((archive / f"{NAME}{MANIFEST_SUFFIX}").read_text())
    assert receipt["receipt"]["producer"]["key_id"] == signed["producer_key_id"]
    assert receipt["receipt"]["source_digest"] == signed["sha256"] and signed["rows"] == len(rows)


def test_a_tampered_byte_is_a_digest_mismatch(drop, rows):
    path = drop.place(rows)
    data = bytearray(path.read_bytes())
    i = data.index(b"2024") if b"2024" in data else len(data) // 2
    data[i] = ord("1") if data[i] != ord("1") else ord("2")
    path.write_bytes(bytes(data))
    (r,) = drop.run()
    drop.assert_rejected(r, "digest_mismatch")
    assert r.extracted == 0  # refused before a row was read
    drop.assert_nothing_written()


def test_a_truncated_file_is_a_digest_mismatch(drop, rows):
    path = drop.place(rows)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    (r,) = drop.run()
    drop.assert_rejected(r, "digest_mismatch")
    assert "truncated" in r.reason
    drop.assert_nothing_written()


def test_a_manifest_signed_by_an_unknown_key_is_refused(drop, rows):
    drop.place(rows, key=drop.rogue_key)
    (r,) = drop.run()
    drop.assert_rejected(r, "unknown_producer_key")
    drop.assert_nothing_written()


def test_a_signature_over_another_manifest_is_invalid(drop, rows):
    drop.place(rows)
    other = drop.place(rows[:50], name="roster_20261126.csv", marker=False)
    shutil.copy(other.with_name(other.name + SIGNATURE_SUFFIX), drop.folder / f"{NAME}{SIGNATURE_SUFFIX}")
    (other.with_name(other.name + MANIFEST_SUFFIX)).unlink()
    (other.with_name(other.name + SIGNATURE_SUFFIX)).unlink()
    other.unlink()
    drop.chown()
    (r,) = drop.run()
    drop.assert_rejected(r, "signature_invalid")
    drop.assert_nothing_written()


def test_a_missing_manifest_is_refused_when_the_deployment_requires_signatures(drop, rows):
    drop.place(rows, sign=False)
    (r,) = drop.run(signed=False, require_signed_drops=[FEED])
    drop.assert_rejected(r, "signature_missing")
    assert "lidm drop sign" in r.reason
    drop.assert_nothing_written()


def test_an_unsigned_drop_still_loads_where_signatures_are_not_required(drop, rows):
    drop.place(rows, sign=False)
    (r,) = drop.run(signed=False)
    assert r.status == "loaded", r.reason


def test_the_same_signed_drop_dropped_again_is_not_loaded_twice(drop, rows):
    drop.place(rows)
    (first,) = drop.run()
    assert first.status == "loaded"
    loaded = drop.count(f"SELECT COUNT(*) FROM {TABLE}")
    archive = drop.folder / "archive"
    for suffix in ("", MANIFEST_SUFFIX, SIGNATURE_SUFFIX):
        shutil.copy(archive / f"{NAME}{suffix}", drop.folder / f"{NAME}{suffix}")
    drop.mark()
    (again,) = drop.run()
    assert again.status == "rejected" and "[replay]" in again.reason
    assert (drop.folder / "rejected" / f"{NAME}.reason.txt").exists()
    assert drop.count(f"SELECT COUNT(*) FROM {TABLE}") == loaded
    assert drop.count("SELECT COUNT(*) FROM lidm_batch WHERE status = 'loaded'") == 1
    assert drop.count("SELECT COUNT(*) FROM lidm_batch WHERE extracted <> loaded + quarantined") == 0


def test_the_department_commands_make_a_key_and_sign_a_drop(tmp_path, rows):
    runner = CliRunner()
    out = runner.invoke(app, ["keys", "producer-new", "--producer", "civil_affairs", "--out", str(tmp_path / "k")])
    assert out.exit_code == 0, out.output
    (key,) = (tmp_path / "k").glob("*.key.json")
    assert oct(key.stat().st_mode & 0o777) == "0o600"
    path = write_roster_drop(tmp_path / "d", rows[:20], name=NAME, marker=False)
    out = runner.invoke(app, ["drop", "sign", str(path), "--key", str(key), "--contract", FEED])
    assert out.exit_code == 0, out.output
    signed = json.loads((tmp_path / "d" / f"{NAME}{MANIFEST_SUFFIX}").read_text())
    assert signed["contract"] == FEED and signed["file"] == NAME and signed["size"] == path.stat().st_size
    assert signed["version"] and signed["rows"] == 20
