"""civil_affairs.low_income_roster from a real OpenSSH SFTP drop (GBK CSV) into PostgreSQL."""

from __future__ import annotations

import csv
import io
import os
import shutil
from pathlib import Path
from urllib.parse import quote

import pytest
from _db import query
from lidm_samples import generate_people, generate_roster, roster_rows, write_roster_drop

from lidm.errors import HostKeyError
from lidm.pipeline import run_feed

pytestmark = [pytest.mark.sftp, pytest.mark.postgres]
FEED = "civil_affairs.low_income_roster"


@pytest.fixture
def drop(sftp_server, request):
    """A fresh drop folder in the SFTP user's home, owned by that user."""
    name = f"drop_{request.node.name[:40]}"
    folder = sftp_server.home / name
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    yield folder, sftp_server.url(name)
    shutil.rmtree(folder, ignore_errors=True)


def _chown(folder: Path) -> None:
    st = folder.parent.stat()
    for p in [folder, *folder.rglob("*")]:
        os.chown(p, st.st_uid, st.st_gid)


def _roster(bad: int = 0, seed: int = 21):
    people = generate_people(2000, seed)
    return roster_rows(generate_roster(people, share=0.1, seed=seed), bad=bad, seed=seed)


def _place(folder: Path, rows, name="roster_20261127.csv", **kw) -> Path:
    path = write_roster_drop(folder, rows, name=name, **kw)
    _chown(folder)
    return path


def _place_csv(folder: Path, rows: list[dict], name="roster_20261127.csv") -> None:
    """A drop written by hand, for headers the sample writer would not produce."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    (folder / name).write_bytes(buf.getvalue().encode("gb18030"))
    (folder / f"{name}.ok").write_text("")
    _chown(folder)


def _count(url: str, sql: str) -> int:
    return query(url, sql)[0][0]


def test_roster_drop_loads_archives_and_answers_with_a_receipt(drop, gateway_pg):
    folder, url = drop
    rows = _roster(bad=5)
    _place(folder, rows.rows)
    (r,) = run_feed(FEED, gateway_pg.settings, connections={"civil_affairs_drop": url})
    assert r.status == "loaded"
    assert r.extracted == len(rows.rows) == r.loaded + r.quarantined
    assert r.quarantined == 6
    assert _count(gateway_pg.central_url, "SELECT COUNT(*) FROM civil_affairs_low_income_roster") == r.loaded
    assert sorted(p.name for p in (folder / "archive").iterdir()) == [
        "roster_20261127.csv",
        "roster_20261127.csv.ok",
        "roster_20261127.csv.quarantine.csv",  # what was held back, for the department (no values)
        "roster_20261127.csv.receipt.json",
    ]
    assert not (folder / "roster_20261127.csv").exists()
    reasons = (folder / "archive" / "roster_20261127.csv.quarantine.csv").read_text("utf-8-sig").splitlines()
    assert reasons[0] == "row,line,locator,field,reason,message" and len(reasons) == 1 + r.quarantined
    receipt = (folder / "archive" / "roster_20261127.csv.receipt.json").read_text()
    assert '"signature"' in receipt and r.batch_id in receipt


def test_incomplete_drop_without_marker_is_left_alone(drop, gateway_pg):
    folder, url = drop
    _place(folder, _roster().rows, marker=False)
    assert run_feed(FEED, gateway_pg.settings, connections={"civil_affairs_drop": url}) == []
    assert (folder / "roster_20261127.csv").exists()


def test_replay_of_the_same_drop_is_rejected_and_changes_nothing(drop, gateway_pg):
    folder, url = drop
    rows = _roster()
    _place(folder, rows.rows)
    run_feed(FEED, gateway_pg.settings, connections={"civil_affairs_drop": url})
    before = _count(gateway_pg.central_url, "SELECT COUNT(*) FROM civil_affairs_low_income_roster")
    shutil.copy(folder / "archive" / "roster_20261127.csv", folder / "roster_20261128.csv")
    (folder / "roster_20261128.csv.ok").write_text("")
    _chown(folder)
    (r,) = run_feed(FEED, gateway_pg.settings, connections={"civil_affairs_drop": url})
    assert r.status == "rejected" and "replay" in r.reason
    reason = (folder / "rejected" / "roster_20261128.csv.reason.txt").read_text()
    assert "already loaded in batch" in reason
    assert _count(gateway_pg.central_url, "SELECT COUNT(*) FROM civil_affairs_low_income_roster") == before
    assert _count(gateway_pg.central_url, "SELECT COUNT(*) FROM lidm_batch WHERE status = 'loaded'") == 1


def test_gbk_file_declared_as_utf8_is_rejected_naming_the_line(drop, gateway_pg):
    from dataclasses import replace

    from lidm.registry import get_adapter

    folder, url = drop
    _place(folder, _roster().rows)
    adapter = get_adapter(FEED)
    utf8 = replace(adapter, source=replace(adapter.source, encoding="utf-8"))
    (r,) = run_feed(utf8, gateway_pg.settings, connections={"civil_affairs_drop": url})
    assert r.status == "rejected"
    assert "[encoding]" in r.reason and "line 1 " in r.reason and "declare encoding='gbk'" in r.reason
    assert "roster_20261127.csv" in r.reason
    assert (folder / "rejected" / "roster_20261127.csv").exists()
    assert _count(gateway_pg.central_url, "SELECT COUNT(*) FROM civil_affairs_low_income_roster") == 0


def test_extra_column_is_rejected_as_schema_drift(drop, gateway_pg):
    folder, url = drop
    _place_csv(folder, [r | {"备注": "x"} for r in _roster().rows])
    (r,) = run_feed(FEED, gateway_pg.settings, connections={"civil_affairs_drop": url})
    assert r.status == "rejected" and "unexpected_column" in r.reason and "field 备注" in r.reason


def test_missing_column_is_rejected(drop, gateway_pg):
    folder, url = drop
    _place_csv(folder, [{k: v for k, v in r.items() if k != "姓名"} for r in _roster().rows])
    (r,) = run_feed(FEED, gateway_pg.settings, connections={"civil_affairs_drop": url})
    assert r.status == "rejected" and "missing_column" in r.reason and "姓名" in r.reason and "name" in r.reason


def test_malformed_rows_are_quarantined_not_lost(drop, gateway_pg):
    folder, url = drop
    path = _place(folder, _roster().rows[:20])
    lines = path.read_bytes().split(b"\n")
    lines[5] = lines[5].rstrip(b"\r") + b",surplus,fields"
    path.write_bytes(b"\n".join(lines))
    (r,) = run_feed(FEED, gateway_pg.settings, connections={"civil_affairs_drop": url})
    assert r.status == "loaded" and r.extracted == 20 and r.quarantined == 1 and r.loaded == 19
    assert ("malformed_row", 1) in r.top_reasons
    assert _count(gateway_pg.central_url, "SELECT row_number FROM lidm_quarantine") == 5


def test_unknown_host_key_is_refused_and_the_drop_untouched(drop, gateway_pg, tmp_path, sftp_server):
    folder, url = drop
    _place(folder, _roster().rows)
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    bad_url = url.replace(quote(str(sftp_server.known_hosts), safe=""), quote(str(empty), safe=""))
    with pytest.raises(HostKeyError, match=r"not in .*known_hosts; refusing an unknown host key"):
        run_feed(FEED, gateway_pg.settings, connections={"civil_affairs_drop": bad_url})
    changed = url.replace(
        quote(str(sftp_server.known_hosts), safe=""), quote(str(sftp_server.wrong_known_hosts), safe="")
    )
    with pytest.raises(HostKeyError, match="CHANGED"):
        run_feed(FEED, gateway_pg.settings, connections={"civil_affairs_drop": changed})
    assert (folder / "roster_20261127.csv").exists() and not (folder / "archive").exists()
