"""Drop stores (local folder and real OpenSSH SFTP): nothing leads out of the folder, names are bytes,
settling is idempotent and a drop's size is checked before it is read."""

from __future__ import annotations

import dataclasses
import os
import shutil
import stat
from pathlib import Path

import pytest
from _db import query
from lidm_samples import ROSTER_HEADER, generate_people, generate_roster, roster_rows
from lidm_samples.sources import csv_bytes

from lidm import DropSource
from lidm.errors import ConfigError, SourceError
from lidm.pipeline import run_feed
from lidm.registry import get_adapter
from lidm.sources.drops import DEFAULT_MAX_BYTES
from lidm.sources.localstore import LocalStore
from lidm.sources.names import check_name, display_name
from lidm.sources.sftp import SftpStore, SftpTarget

ROSTER = "civil_affairs.low_income_roster"
BAD_NAMES = ["../x.csv", "a/b.csv", "/etc/passwd", "", ".", "..", "a\x00b.csv", "a\\b.csv"]
GBK_NAME = "roster_低保名单.csv"


@pytest.fixture(scope="module")
def roster_csv() -> bytes:
    rows = roster_rows(generate_roster(generate_people(200, seed=31), share=0.1, seed=31)).rows
    return csv_bytes(ROSTER_HEADER, rows, "gb18030")


def _drop(folder: Path, name: str, data: bytes) -> None:
    LocalStore(folder).put(name, data)
    LocalStore(folder).put(name + ".ok", b"")


def _names(url: str) -> list[str]:
    return sorted(n for (n,) in query(url, "SELECT source_name FROM lidm_batch"))


# --------------------------------------------------------------------------- names


def test_display_name_reads_utf8_then_gb18030_then_escapes():
    assert display_name("roster_1.csv") == "roster_1.csv"
    assert display_name(os.fsdecode(GBK_NAME.encode("gbk"))) == GBK_NAME
    assert display_name(os.fsdecode(GBK_NAME.encode("utf-8"))) == GBK_NAME
    assert display_name(os.fsdecode(b"a\xff.csv")) == "a\\xff.csv"
    assert display_name("a\nb\u202e.csv") == "a\\x0ab\\u202e.csv"
    assert display_name("lone\ud800") == "lone\\ud800"  # not from surrogateescape: still shown, never raised


@pytest.mark.parametrize("bad", BAD_NAMES)
def test_a_name_is_one_plain_file_name(bad):
    with pytest.raises(SourceError, match="refusing the file name"):
        check_name(bad, "/drops")


@pytest.mark.parametrize("bad", BAD_NAMES)
def test_local_store_refuses_paths_in_every_call(tmp_path, bad):
    (tmp_path / "x.csv").write_bytes(b"a\n")
    store = LocalStore(tmp_path)
    for call in (
        lambda: store.open(bad),
        lambda: store.size(bad),
        lambda: store.read_text(bad),
        lambda: store.write_text("archive/" + bad, "x"),
        lambda: store.put(bad, b"x"),
        lambda: store.move(bad, "archive"),
        lambda: store.move("x.csv", bad or "?/"),
        lambda: store.list(bad or "../"),
    ):
        with pytest.raises(SourceError):
            call()
    assert sorted(os.listdir(tmp_path)) in (["x.csv"], ["archive", "x.csv"])


def test_a_refusal_names_the_file_in_its_printable_form(tmp_path):
    with pytest.raises(SourceError) as info:
        LocalStore(tmp_path).open("../a\nb.csv")
    assert "refusing the file name '../a\\x0ab.csv'" in str(info.value) and "\n" not in str(info.value)


# --------------------------------------------------------------------------- local folder: never outside


def test_listing_keeps_regular_files_and_hard_links_only(tmp_path):
    outside = tmp_path / "outside.csv"
    outside.write_bytes(b"a\n")
    drops = tmp_path / "drops"
    drops.mkdir()
    (drops / "real.csv").write_bytes(b"a\n")
    os.link(outside, drops / "hard.csv")
    os.symlink(outside, drops / "soft.csv")
    os.symlink(tmp_path / "missing", drops / "dangling.csv")
    os.mkfifo(drops / "pipe.csv")
    (drops / "folder.csv").mkdir()
    assert LocalStore(drops).list() == ["hard.csv", "real.csv"]


def test_open_never_follows_a_symlink_nor_hangs_on_a_fifo(tmp_path):
    os.symlink("/etc/passwd", tmp_path / "roster_x.csv")
    os.mkfifo(tmp_path / "pipe.csv")
    store = LocalStore(tmp_path)
    with pytest.raises(SourceError, match="symlink"):
        store.open("roster_x.csv")
    with pytest.raises(SourceError, match="symlink"):
        store.read_text("roster_x.csv")
    with pytest.raises(SourceError, match="not a regular file"):
        store.size("roster_x.csv")
    with pytest.raises(SourceError, match="not a regular file"):
        store.open("pipe.csv")


def test_a_receipt_is_never_written_through_a_planted_link(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("keep")
    drops = tmp_path / "drops"
    (drops / "archive").mkdir(parents=True)
    os.symlink(victim, drops / "archive" / "r.csv.receipt.json")
    os.symlink(victim, drops / "archive" / ".r.csv.receipt.json.part")
    LocalStore(drops).write_text("archive/r.csv.receipt.json", "{}")
    assert victim.read_text() == "keep"
    assert (drops / "archive" / "r.csv.receipt.json").read_text() == "{}"
    assert not (drops / "archive" / "r.csv.receipt.json").is_symlink()


@pytest.mark.parametrize("sub", ["archive", "rejected"])
def test_settling_into_a_symlinked_or_file_folder_is_refused(tmp_path, sub):
    outside = tmp_path / "outside"
    outside.mkdir()
    drops = tmp_path / "drops"
    drops.mkdir()
    (drops / "a.csv").write_bytes(b"x")
    os.symlink(outside, drops / sub)
    store = LocalStore(drops)
    with pytest.raises(SourceError, match="symlink"):
        store.move("a.csv", sub)
    with pytest.raises(SourceError, match="symlink"):
        store.write_text(f"{sub}/a.csv.receipt.json", "{}")
    os.unlink(drops / sub)
    (drops / sub).write_bytes(b"")
    with pytest.raises(SourceError, match="not a folder"):
        store.check_folder(sub)
    with pytest.raises(SourceError, match="not a folder"):
        store.move("a.csv", sub)
    assert list(outside.iterdir()) == [] and (drops / "a.csv").exists()


def test_a_hard_linked_drop_is_a_regular_file_and_loads(gateway_sqlite, tmp_path, roster_csv):
    elsewhere = tmp_path / "export" / "roster_1.csv"
    elsewhere.parent.mkdir()
    elsewhere.write_bytes(roster_csv)
    drops = tmp_path / "drops"
    drops.mkdir()
    os.link(elsewhere, drops / "roster_1.csv")
    LocalStore(drops).put("roster_1.csv.ok", b"")
    [r] = run_feed(ROSTER, gateway_sqlite.settings, connections={"civil_affairs_drop": drops.as_uri()})
    assert r.status == "loaded" and r.extracted > 0
    assert (drops / "archive" / "roster_1.csv").is_file() and elsewhere.is_file()


def test_a_symlinked_drop_is_skipped_with_a_warning(gateway_sqlite, tmp_path, roster_csv, caplog):
    drops = tmp_path / "drops"
    _drop(drops, "roster_1.csv", roster_csv)
    os.symlink("/etc/passwd", drops / "roster_x.csv")
    LocalStore(drops).put("roster_x.csv.ok", b"")
    with caplog.at_level("WARNING", logger="lidm"):
        [r] = run_feed(ROSTER, gateway_sqlite.settings, connections={"civil_affairs_drop": drops.as_uri()})
    assert r.status == "loaded" and r.source == "roster_1.csv"
    assert "roster_x.csv' is a symlink; ignored" in caplog.text
    assert os.path.islink(drops / "roster_x.csv") and (drops / "roster_x.csv.ok").exists()


# --------------------------------------------------------------------------- names in legacy encodings


def test_a_pattern_may_name_the_readable_form_of_a_gbk_name(gateway_sqlite, tmp_path, roster_csv):
    drops = tmp_path / "drops"
    raw = "低保名单_202611.csv".encode("gbk")
    _drop(drops, os.fsdecode(raw), roster_csv)
    a = get_adapter(ROSTER)
    a = dataclasses.replace(a, source=dataclasses.replace(a.source, pattern="低保名单_*.csv"), name="test.gbk_names")
    [r] = run_feed(a, gateway_sqlite.settings, connections={"civil_affairs_drop": drops.as_uri()})
    assert r.status == "loaded" and r.source == "低保名单_202611.csv"
    assert _names(gateway_sqlite.settings.effective_central_url) == ["低保名单_202611.csv"]
    assert os.path.isfile(os.fsencode(drops) + b"/archive/" + raw)


def test_a_rejected_gbk_named_drop_keeps_its_raw_name_and_a_readable_reason(gateway_sqlite, tmp_path):
    drops = tmp_path / "drops"
    raw = GBK_NAME.encode("gbk")
    _drop(drops, os.fsdecode(raw), b"")
    [r] = run_feed(ROSTER, gateway_sqlite.settings, connections={"civil_affairs_drop": drops.as_uri()})
    assert r.status == "rejected" and GBK_NAME in r.reason
    rejected = os.fsencode(drops) + b"/rejected/" + raw
    assert os.path.isfile(rejected) and os.path.isfile(rejected + b".ok")
    with open(rejected + b".reason.txt", encoding="utf-8") as fh:
        assert GBK_NAME in fh.read()


# --------------------------------------------------------------------------- settling, size limit


def test_settling_twice_is_not_an_error(gateway_sqlite, tmp_path, roster_csv):
    drops = tmp_path / "drops"
    _drop(drops, "roster_1.csv", roster_csv)
    store = LocalStore(drops)
    [batch] = DropSource(connection="c", pattern="roster_*.csv").batches(store)
    batch.on_loaded("b1", '{"batch": "b1"}')
    batch.on_loaded("b1", '{"batch": "b2"}')  # another run's settle of the same drop
    batch.on_rejected("late")
    assert (drops / "archive" / "roster_1.csv.receipt.json").read_text() == '{"batch": "b1"}'
    assert sorted(os.listdir(drops / "archive")) == ["roster_1.csv", "roster_1.csv.ok", "roster_1.csv.receipt.json"]


def test_max_bytes_default_and_checks():
    assert DropSource(connection="c").max_bytes == DEFAULT_MAX_BYTES == 4 << 30
    with pytest.raises(ConfigError, match="max_bytes"):
        DropSource(connection="c", max_bytes=0)
    with pytest.raises(ConfigError, match="merged_cells"):
        DropSource(connection="c", format="xlsx", merged_cells="guess")


def test_size_is_lstat_and_never_reads(tmp_path):
    with open(tmp_path / "big.csv", "wb") as fh:
        fh.truncate(3 << 30)
    assert LocalStore(tmp_path).size("big.csv") == 3 << 30


def test_an_xlsx_over_the_limit_is_rejected_before_reading(gateway_sqlite, tmp_path):
    from test_bad_input import _xlsx_population_adapter

    drops = tmp_path / "drops"
    drops.mkdir()
    with open(drops / "population_1.xlsx", "wb") as fh:
        fh.truncate(5 << 20)
    LocalStore(drops).put("population_1.xlsx.ok", b"")
    a = _xlsx_population_adapter()
    a = dataclasses.replace(a, source=dataclasses.replace(a.source, max_bytes=1 << 20))
    [r] = run_feed(a, gateway_sqlite.settings, connections={"xlsx_drop": drops.as_uri()})
    assert r.status == "rejected" and "[file_too_large]" in r.reason and "5.0 MiB" in r.reason, r.reason
    assert (drops / "rejected" / "population_1.xlsx").exists()


# --------------------------------------------------------------------------- real SFTP (OpenSSH)


@pytest.fixture
def sftp_folder(sftp_server, request):
    """A fresh drop folder in the SFTP user's home, owned by that user; (server, folder, store)."""
    folder = sftp_server.home / f"stores_{request.node.name[:40]}"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    request.addfinalizer(lambda: shutil.rmtree(folder, ignore_errors=True))
    store = SftpStore(SftpTarget.from_url(sftp_server.url(folder.name)))
    request.addfinalizer(store.close)
    return sftp_server, folder, store


def _chown(folder: Path) -> None:
    st = folder.parent.stat()
    os.lchown(folder, st.st_uid, st.st_gid)
    for name in os.listdir(os.fsencode(folder)):
        os.lchown(os.fsencode(folder) + b"/" + name, st.st_uid, st.st_gid)


@pytest.mark.sftp
def test_sftp_lists_raw_names_and_skips_symlinks(sftp_folder):
    _server, folder, store = sftp_folder
    raw = GBK_NAME.encode("gbk")
    with open(os.fsencode(folder) + b"/" + raw, "wb") as fh:
        fh.write(b"a\n")
    (folder / "real.csv").write_bytes(b"b\n")
    os.symlink("/etc/passwd", folder / "roster_x.csv")
    os.mkdir(folder / "sub")
    _chown(folder)
    names = store.list()
    assert names == sorted(["real.csv", os.fsdecode(raw)])
    assert [display_name(n) for n in names if n != "real.csv"] == [GBK_NAME]
    with store.open(os.fsdecode(raw)) as fh:
        assert fh.read() == b"a\n"
    assert store.size(os.fsdecode(raw)) == 2
    with pytest.raises(SourceError, match="symlink"):
        store.open("roster_x.csv")
    with pytest.raises(SourceError, match="symlink"):
        store.size("roster_x.csv")
    for bad in BAD_NAMES:
        with pytest.raises(SourceError):
            store.open(bad)
    store.move(os.fsdecode(raw), "archive")
    store.write_text("archive/" + os.fsdecode(raw) + ".receipt.json", "{}")
    assert os.path.isfile(os.fsencode(folder) + b"/archive/" + raw)
    assert os.path.isfile(os.fsencode(folder) + b"/archive/" + raw + b".receipt.json")
    assert stat.S_ISDIR(os.lstat(folder / "archive").st_mode)


@pytest.mark.sftp
@pytest.mark.postgres
def test_sftp_symlink_to_passwd_is_not_picked_up(sftp_folder, gateway_pg, roster_csv):
    server, folder, _store = sftp_folder
    _drop(folder, "roster_1.csv", roster_csv)
    os.symlink("/etc/passwd", folder / "roster_x.csv")
    (folder / "roster_x.csv.ok").write_bytes(b"")
    _chown(folder)
    [r] = run_feed(ROSTER, gateway_pg.settings, connections={"civil_affairs_drop": server.url(folder.name)})
    assert r.status == "loaded" and r.source == "roster_1.csv"
    assert os.path.islink(folder / "roster_x.csv") and (folder / "roster_x.csv.ok").exists()
    assert not (folder / "archive" / "roster_x.csv").exists()
    assert _names(gateway_pg.central_url) == ["roster_1.csv"]


@pytest.mark.sftp
def test_sftp_settling_twice_is_not_an_error(sftp_folder, roster_csv):
    _server, folder, store = sftp_folder
    _drop(folder, "roster_1.csv", roster_csv)
    _chown(folder)
    [batch] = DropSource(connection="c", pattern="roster_*.csv").batches(store)
    batch.on_loaded("b1", '{"batch": "b1"}')
    batch.on_loaded("b1", '{"batch": "b2"}')
    assert (folder / "archive" / "roster_1.csv.receipt.json").read_text() == '{"batch": "b1"}'


def test_format_auto_reads_each_file_as_its_name_says(tmp_path):
    """A street saves the XLSX template or its system's GBK CSV export into the same folder (home visits)."""
    from lidm_samples.sources import xlsx_bytes

    source = DropSource(connection="x", pattern="d_*", format="auto", encoding="gbk")
    assert [source.format_of(n) for n in ("d_1.xlsx", "d_2.XLSX", "d_3.csv", "d_4.txt")] == [
        "xlsx",
        "xlsx",
        "csv",
        "csv",
    ]
    assert DropSource(connection="x", format="xlsx").format_of("d.csv") == "xlsx"  # a declared format holds
    assert "xlsx: the active sheet, csv: gbk" in source.describe()
    drops = tmp_path / "drops"
    _drop(drops, "d_1.xlsx", xlsx_bytes(["编号", "名称"], [{"编号": "1", "名称": "甲"}]))
    _drop(drops, "d_2.csv", "编号,名称\r\n2,乙\r\n".encode("gbk"))
    rows = []
    for batch in source.batches(LocalStore(drops)):
        for chunk in batch.chunks():
            rows += [(r["编号"], r["名称"]) for r in chunk.to_pylist()]
    assert rows == [("1", "甲"), ("2", "乙")]
    with pytest.raises(ConfigError, match="auto"):
        DropSource(connection="x", format="ods")
