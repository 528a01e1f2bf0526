"""Warnings pushed to departments and their dispositions taken back, over real channels.

A small synthetic city is loaded and monitored once (SQLite); each test works on a copy of it. The folder
channel runs on the embedded database, the SFTP channel against a real OpenSSH sshd, the table channel with
the central database and the department's own database both on PostgreSQL.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import re
import secrets
import shutil
from datetime import date, datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode

import pyarrow as pa
import pytest
import sqlalchemy as sa
from _city import monitored_city, private_copy
from _city import rows as _rows
from lidm_samples.demo import demo_settings
from lidm_samples.responses import DISPOSITION_COLUMNS, NO_SUCH_WARNING, respond

import lidm.monitor.push as push_module
from lidm.config import Settings
from lidm.contracts.load import load_catalog
from lidm.errors import HostKeyError, SourceError
from lidm.keys import load_keyring
from lidm.monitor.channels import REASON_COLUMNS, ChannelError, TableChannel
from lidm.monitor.feedback import collect_dispositions
from lidm.monitor.lifecycle import transition
from lidm.monitor.push import push_warnings, warning_grant
from lidm.protect import Protector

PUSHED_AT = datetime(2026, 11, 28, 9, 0, 0)
TODAY = date(2026, 12, 1)
COLLECTED_AT = datetime(2026, 12, 1, 18, 0, 0)
BOM = b"\xef\xbb\xbf"
DISPOSITION_HEADER = list(DISPOSITION_COLUMNS)


@pytest.fixture(scope="module")
def city(tmp_path_factory) -> Path:
    """One monitored city for the module: about 60 warnings for five departments."""
    home = tmp_path_factory.mktemp("city")
    monitored_city(home)
    return home


@pytest.fixture
def home(city: Path, tmp_path: Path) -> Path:
    """A private copy of the city's central database and keyring."""
    return private_copy(city, tmp_path)


def _one(settings: Settings, sql: str, **params):
    return _rows(settings, sql, **params)[0][0]


def _machine_files(outbox: Path) -> list[Path]:
    """The pushes' machine CSVs: the files their manifests name (the files for people sit beside them)."""
    return sorted(outbox / json.loads(m.read_text())["file"] for m in outbox.glob("*.manifest.json"))


def _read_csv(data: bytes) -> list[dict[str, str]]:
    assert data.startswith(BOM)
    return list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"))))


def _statuses(settings: Settings, department: str) -> dict[str, str]:
    return dict(
        _rows(
            settings,
            "SELECT warning_id, status FROM platform_warning WHERE target_consumer = :d",
            d=department,
        )
    )


def _busiest(settings: Settings, department: str) -> str:
    """The office holding most of a department's warnings (a street office for civil affairs)."""
    return _rows(
        settings,
        "SELECT target_consumer FROM platform_warning WHERE target_department = :d "
        "GROUP BY target_consumer ORDER BY count(*) DESC, target_consumer LIMIT 1",
        d=department,
    )[0][0]


def _counts(settings: Settings) -> dict[str, int]:
    """Everything a collect or push could add: a re-run must leave all of it alone."""
    tables = ("lidm_push", "lidm_disposition_result", "platform_disposition", "lidm_warning_event")
    out = {t: _one(settings, f"SELECT count(*) FROM {t}") for t in tables}
    out |= {
        f"status:{s}": n for s, n in _rows(settings, "SELECT status, count(*) FROM platform_warning GROUP BY status")
    }
    return out


def _disposition_file(rows: list[dict[str, object]], extra_lines: list[str] = ()) -> bytes:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow(DISPOSITION_HEADER)
    for r in rows:
        writer.writerow(["" if r.get(c) is None else r[c] for c in DISPOSITION_HEADER])
    text = buf.getvalue() + "".join(line + "\r\n" for line in extra_lines)
    return BOM + text.encode("utf-8")


def _personal_values(pushed: list[dict[str, str]]) -> set[str]:
    """Clear id numbers and unmasked names the departments received: none may reach a log or a reason."""
    values = {r["id_number"] for r in pushed if r.get("id_number")}
    values |= {r["name"] for r in pushed if r.get("name") and "*" not in r["name"]}
    return values


def _assert_no_personal_values(values: set[str], *texts: str) -> None:
    assert values
    for text in texts:
        leaked = sorted(v for v in values if v in text)
        assert not leaked, f"{len(leaked)} personal value(s) leaked"


# ------------------------------------------------------------------------------------------ folder channel


def test_folder_channel_round_trip(home: Path, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    settings = demo_settings(home)
    catalog = load_catalog()
    contract = catalog["platform.warning"]
    protector = Protector(contract, load_keyring(settings))
    waiting = dict(
        _rows(settings, "SELECT target_consumer, count(*) FROM platform_warning WHERE status = 'raised' GROUP BY 1")
    )
    # Each office holds what routing gave it: the city bureau, county bureaus, street offices.
    assert "medical_insurance" in waiting
    kinds = {catalog.consumers.members[c].kind for c in waiting}
    assert kinds == {"department", "county", "street"}

    results = {r.consumer: r for r in push_warnings(settings, now=PUSHED_AT)}
    pushed = {d: r for d, r in results.items() if r.status == "pushed"}
    assert set(pushed) == set(waiting)
    assert all(r.status == "nothing" for d, r in results.items() if d not in pushed)

    received: dict[str, list[dict[str, str]]] = {}
    for dept, r in pushed.items():
        outbox = home / "channels" / dept / "outbox"
        files = _machine_files(outbox)
        assert len(files) == 1 and r.target == str(files[0])
        data = files[0].read_bytes()
        manifest = json.loads(files[0].with_name(files[0].stem + ".manifest.json").read_text())
        assert manifest["rows"] == r.warnings == waiting[dept]
        assert manifest["sha256"] == hashlib.sha256(data).hexdigest()
        rows = received[dept] = _read_csv(data)
        grant = warning_grant(catalog, dept)
        # Exactly the granted fields, in contract order; only this department's warnings, as pushed.
        assert list(rows[0]) == [f.name for f in contract.fields if f.name in grant.fields]
        assert manifest["fields"] == r.fields == {k: v.value for k, v in grant.fields.items()}
        assert {x["target_consumer"] for x in rows} == {dept}
        assert {x["status"] for x in rows} == {"pushed"}
        tokens = dict(
            _rows(
                settings,
                "SELECT warning_id, id_number_token FROM platform_warning WHERE target_consumer = :d",
                d=dept,
            )
        )
        clear_ids = protector.token(pa.array([x["id_number"] for x in rows])).to_pylist()
        assert clear_ids == [bytes(tokens[x["warning_id"]]).hex() for x in rows]  # id_number clear: the real number
        assert all(re.fullmatch(r"[0-9a-f]{64}", x["household_id"]) for x in rows if x["household_id"])
        # Tokens leave as the department's own pseudonyms, never the master tokens the platform matches on.
        master = {bytes(t).hex() for (t,) in _rows(settings, "SELECT household_id_token FROM platform_warning") if t}
        assert rows and not {x["household_id"] for x in rows} & master
        names = [x["name"] for x in rows]
        if grant.fields["name"].value == "clear":
            assert not any("*" in n for n in names)
        else:
            assert all("*" in n for n in names)
    streets = [d for d in received if d.startswith("civil_affairs.")]
    assert streets and "*" not in "".join(x["name"] for d in streets for x in received[d])  # name in clear
    # Education receives (or would receive, when it has no warning) what its grant says: the name masked.
    education = {k: v.value for k, v in warning_grant(catalog, "education").fields.items()}
    assert results["education"].fields == education and education["name"] == "masked"

    pushes = {
        r.department: r
        for r in _rows(settings, "SELECT department, channel, target, warnings, fields, push_id FROM lidm_push")
    }
    assert set(pushes) == set(pushed)
    for dept, p in pushes.items():
        assert (p.channel, p.target, p.warnings) == ("folder", pushed[dept].target, waiting[dept])
        assert json.loads(p.fields) == pushed[dept].fields
        state = _rows(
            settings,
            "SELECT DISTINCT s.push_id FROM lidm_warning_state s JOIN platform_warning w USING (warning_id) "
            "WHERE w.target_consumer = :d",
            d=dept,
        )
        assert [s.push_id for s in state] == [p.push_id]
        assert set(_statuses(settings, dept).values()) == {"pushed"}

    # Nothing new: nothing pushed, no file written.
    before = _counts(settings)
    again = push_warnings(settings)
    assert {r.status for r in again} == {"nothing"}
    assert _counts(settings) == before
    assert all(len(_machine_files(home / "channels" / d / "outbox")) == 1 for d in pushed)

    faulty = min(d for d in pushed if d.startswith("civil_affairs."))  # a street office that sends bad rows
    answers = {d: respond(settings, d, seed=11, today=TODAY, faults=d == faulty) for d in pushed}
    collected = collect_dispositions(settings, now=COLLECTED_AT)
    totals = collected.totals()
    assert totals["acknowledged"] == sum(waiting.values())
    assert totals["applied"] == sum(sum(a.outcomes.values()) for a in answers.values())
    assert dict(collected.refusals) == {"unknown_warning": 1, "duplicate": 1}
    refused = _rows(settings, "SELECT warning_id, reason FROM lidm_disposition_result WHERE status = 'refused'")
    assert sorted(r.reason.split("]")[0] + "]" for r in refused) == ["[duplicate]", "[unknown_warning]"]
    assert [r.warning_id for r in refused if r.reason.startswith("[unknown_warning]")] == [None]
    assert NO_SUCH_WARNING not in " ".join(r.reason for r in refused)

    for dept, answer in answers.items():
        statuses = _statuses(settings, dept)
        final = sum(n for outcome, n in answer.outcomes.items() if outcome != "referred")
        assert list(statuses.values()).count("disposed") == final
        assert set(statuses.values()) <= {"acknowledged", "disposed"}
        inbox = home / "channels" / dept / "inbox"
        assert not list(inbox.glob("*.csv"))
        assert len(list((inbox / "done").glob("*.csv"))) == len(answer.files) >= 1
        assert len(list((inbox / "done").glob("*.result.json"))) == len(answer.files)
    disposed = _rows(
        settings,
        "SELECT s.warning_id, s.disposition_id, d.outcome FROM lidm_warning_state s "
        "JOIN platform_disposition d ON d.disposition_id = s.disposition_id WHERE s.disposed_at IS NOT NULL",
    )
    assert len(disposed) == _one(settings, "SELECT count(*) FROM platform_warning WHERE status = 'disposed'")
    assert all(d.outcome != "referred" for d in disposed)
    events = [
        e.status
        for e in _rows(
            settings,
            "SELECT status FROM lidm_warning_event WHERE warning_id = :w ORDER BY id",
            w=disposed[0].warning_id,
        )
    ]
    assert events == ["raised", "pushed", "acknowledged", "disposed"]
    referred = _rows(settings, "SELECT warning_id FROM platform_disposition WHERE outcome = 'referred'")
    assert referred
    for r in referred:
        assert _one(settings, "SELECT status FROM platform_warning WHERE warning_id = :w", w=r.warning_id) == (
            "acknowledged"
        )

    # Re-running changes nothing; the department has nothing new to read either.
    before = _counts(settings)
    assert collect_dispositions(settings, now=COLLECTED_AT + timedelta(hours=1)).totals()["rows"] == 0
    assert push_warnings(settings) and _counts(settings) == before
    assert respond(settings, faulty, seed=11, today=TODAY).warnings == 0

    everything = [x for rows in received.values() for x in rows]
    reasons = " ".join(r.reason or "" for r in _rows(settings, "SELECT reason FROM lidm_disposition_result"))
    details = " ".join(r.detail or "" for r in _rows(settings, "SELECT detail FROM lidm_warning_event"))
    _assert_no_personal_values(_personal_values(everything), caplog.text, reasons, details)


def test_refusals_reasons_and_corrections(home: Path, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    settings = demo_settings(home)
    dept = "medical_insurance"
    office = _busiest(settings, "civil_affairs")
    push_warnings(settings, departments=[dept, office], now=PUSHED_AT)
    channel = home / "channels" / dept
    ours = _read_csv(_machine_files(channel / "outbox")[0].read_bytes())
    theirs = _read_csv(_machine_files(home / "channels" / office / "outbox")[0].read_bytes())
    assert len(ours) >= 8
    w = ours

    catalog = load_catalog()
    engine = sa.create_engine(settings.effective_central_url)
    with engine.begin() as conn:  # the condition of w[6] went away before the department answered
        transition(conn, catalog, [w[6]["warning_id"]], "closed", actor="test", detail="test", at=PUSHED_AT)
    engine.dispose()

    def row(i: int, **kw) -> dict[str, object]:
        base = {
            "warning_id": w[i]["warning_id"],
            "department": dept,
            "outcome": "granted",
            "assistance_kind": "medical_assistance",
            "amount": "3000",
            "granted_on": "2026-11-30",
            "handler": "王敏",
            "disposed_at": "2026-11-30 10:00:00",
            "id_number": w[i]["id_number"],
            "district_code": w[i]["district_code"],
        }
        return base | kw

    bad_check = w[2]["id_number"][:17] + ("0" if w[2]["id_number"][17] != "0" else "1")
    rows = [
        row(0),  # 1 applied
        row(0),  # 2 the same again: unchanged
        row(0, disposed_at="2026-11-30 11:00:00"),  # 3 a second disposition: duplicate
        row(0, warning_id=theirs[0]["warning_id"], id_number=theirs[0]["id_number"]),  # 4 other_department
        row(1, amount=None),  # 5 inconsistent_outcome
        row(1, outcome="not_eligible", assistance_kind=None, amount=None, granted_on=None),  # 6 inconsistent
        row(2, id_number=w[3]["id_number"]),  # 7 id_number_mismatch
        row(2, id_number=bad_check),  # 8 invalid.id_number.checksum
        row(2, outcome="approved"),  # 9 invalid.enum
        row(2, warning_id="W20991231NOSUCH00-1"),  # 10 unknown_warning
        row(6),  # 11 closed
        row(4, department="education"),  # 12 department_mismatch
        row(5, outcome="referred", assistance_kind=None, amount=None, granted_on=None, reason="一事一议"),  # 13
    ]
    malformed = f"{w[3]['warning_id']},{dept},granted,too,many,fields,here,x,y,z,1,2,3,4"  # 14
    inbox = channel / "inbox"
    (inbox / "disposition_20261130.csv").write_bytes(_disposition_file(rows, [malformed]))
    (inbox / "disposition_noid.csv").write_bytes(BOM + b"warning_id,outcome,handler,disposed_at\r\nW1,granted,x,y\r\n")
    (inbox / "disposition_gbk.csv").write_bytes(_disposition_file(rows[:1]).replace(BOM, b"") + "王".encode("gbk"))
    (inbox / "notes.txt").write_text("left alone")

    result = collect_dispositions(settings, departments=[dept], now=COLLECTED_AT)
    decided = {
        r.row_number: (r.status, r.reason)
        for r in _rows(settings, "SELECT row_number, status, reason FROM lidm_disposition_result")
    }
    codes = {
        n: (s, (reason or "").split("]")[0].lstrip("[") if s == "refused" else None)
        for n, (s, reason) in decided.items()
    }
    assert codes == {
        1: ("applied", None),
        2: ("unchanged", None),
        3: ("refused", "duplicate"),
        4: ("refused", "other_department"),
        5: ("refused", "inconsistent_outcome"),
        6: ("refused", "inconsistent_outcome"),
        7: ("refused", "id_number_mismatch"),
        8: ("refused", "invalid.id_number.checksum"),
        9: ("refused", "invalid.enum"),
        10: ("refused", "unknown_warning"),
        11: ("refused", "closed"),
        12: ("refused", "department_mismatch"),
        13: ("applied", None),
        14: ("refused", "malformed_row"),
    }
    assert result.totals(dept) | {"rows": 0} == {
        "rows": 0,
        "acknowledged": 0,
        "applied": 2,
        "refused": 11,
        "unchanged": 1,
        "files": 1,
        "rejected_files": 2,
    }
    report = json.loads((inbox / "done" / "disposition_20261130.csv.result.json").read_text())
    assert [r["status"] for r in report["results"]] == [decided[n][0] for n in range(1, 15)]
    for name in ("disposition_noid.csv", "disposition_gbk.csv"):
        assert (inbox / "rejected" / name).exists()
    assert "id_number" in (inbox / "rejected" / "disposition_noid.csv.reason.txt").read_text()
    assert "encoding" in (inbox / "rejected" / "disposition_gbk.csv.reason.txt").read_text()
    assert (inbox / "notes.txt").exists()

    statuses = _statuses(settings, dept)
    assert statuses[w[0]["warning_id"]] == "disposed"
    assert statuses[w[5]["warning_id"]] == "acknowledged"  # referred: open until the county decides
    assert statuses[w[6]["warning_id"]] == "closed"
    assert statuses[w[1]["warning_id"]] == statuses[w[2]["warning_id"]] == "pushed"

    before = _counts(settings)
    assert collect_dispositions(settings, departments=[dept]).totals()["rows"] == 0
    assert _counts(settings) == before

    # Later: the county decided (granted after referral), a correction of row 1, and row 1 re-sent as it was.
    later = [
        row(5, disposed_at="2026-12-05 09:00:00"),
        row(0, amount="3500"),
        row(0, amount="3500"),
    ]
    (inbox / "disposition_20261205.csv").write_bytes(_disposition_file(later))
    (inbox / "disposition_resend.csv").write_bytes(_disposition_file([row(0, amount="3500")]))
    result = collect_dispositions(settings, departments=[dept], now=COLLECTED_AT + timedelta(days=4))
    assert (result.totals()["applied"], result.totals()["unchanged"], result.totals()["refused"]) == (2, 2, 0)
    assert _statuses(settings, dept)[w[5]["warning_id"]] == "disposed"
    amounts = _rows(
        settings, "SELECT outcome, amount FROM platform_disposition WHERE warning_id = :w", w=w[0]["warning_id"]
    )
    assert [(a.outcome, float(a.amount)) for a in amounts] == [("granted", 3500.0)]
    notes = [r.reason for r in _rows(settings, "SELECT reason FROM lidm_disposition_result WHERE status = 'applied'")]
    assert any(n and n.startswith("correction of disposition") for n in notes)

    reasons = " ".join(r.reason or "" for r in _rows(settings, "SELECT reason FROM lidm_disposition_result"))
    _assert_no_personal_values(_personal_values(ours + theirs) | {bad_check}, caplog.text, reasons)


def test_crash_between_file_and_commit_delivers_again(home: Path, monkeypatch) -> None:
    """At-least-once: a file written but not recorded is written again, with the same warnings."""
    settings = demo_settings(home)
    dept = "medical_insurance"

    def boom(*_a, **_k):
        raise RuntimeError("crash after the file was written")

    monkeypatch.setattr(push_module, "transition", boom)
    with pytest.raises(RuntimeError):
        push_warnings(settings, departments=[dept], now=PUSHED_AT)
    monkeypatch.undo()
    outbox = home / "channels" / dept / "outbox"
    assert len(_machine_files(outbox)) == 1
    assert _one(settings, "SELECT count(*) FROM lidm_push") == 0
    assert set(_statuses(settings, dept).values()) == {"raised"}

    (result,) = push_warnings(settings, departments=[dept], now=PUSHED_AT + timedelta(minutes=5))
    first, second = (_read_csv(p.read_bytes()) for p in _machine_files(outbox))
    assert [r["warning_id"] for r in first] == [r["warning_id"] for r in second]
    assert result.warnings == len(second) and _one(settings, "SELECT count(*) FROM lidm_push") == 1
    assert set(_statuses(settings, dept).values()) == {"pushed"}


def test_a_channel_folder_never_leads_out_of_itself(home: Path, tmp_path: Path, caplog) -> None:
    """The channel's folders have the drops' guarantees: a symlinked answer file is not read, a symlinked
    inbox/done/ is never written through, and the real files beside them are still taken."""
    caplog.set_level(logging.INFO)
    settings = demo_settings(home)
    dept = "medical_insurance"
    push_warnings(settings, departments=[dept], now=PUSHED_AT)
    (wid,) = _rows(settings, "SELECT warning_id FROM platform_warning WHERE target_consumer = :d LIMIT 1", d=dept)[0]
    inbox = home / "channels" / dept / "inbox"
    outside = tmp_path / "outside"
    outside.mkdir()
    planted = outside / "ack_elsewhere.csv"
    planted.write_text(f"warning_id,acknowledged_at\n{wid},2026-11-30 10:00:00\n", encoding="utf-8")
    (inbox / "ack_linked.csv").symlink_to(planted)
    (inbox / "ack_real.csv").write_text("warning_id,acknowledged_at\nW-NO-SUCH,2026-11-30 10:00:00\n")

    collected = collect_dispositions(settings, departments=[dept], now=COLLECTED_AT)
    assert [s.source.rsplit("/", 1)[-1] for s in collected.sources] == ["ack_real.csv"]
    assert collected.totals()["acknowledged"] == 0  # the linked file's acknowledgement was not taken
    assert "ack_linked.csv' is a symlink; ignored" in caplog.text
    assert (inbox / "ack_linked.csv").is_symlink() and planted.exists()  # left where it was, not moved

    # inbox/done/ replaced by a link out of the channel: nothing is written there, the file stays in the inbox.
    (inbox / "ack_linked.csv").unlink()
    shutil.rmtree(inbox / "done")
    (inbox / "done").symlink_to(outside, target_is_directory=True)
    (inbox / "ack_again.csv").write_text(f"warning_id,acknowledged_at\n{wid},2026-11-30 10:00:00\n")
    with pytest.raises(SourceError) as err:
        collect_dispositions(settings, departments=[dept], now=COLLECTED_AT)
    assert "done/ must be a real folder" in str(err.value)
    assert sorted(p.name for p in outside.iterdir()) == ["ack_elsewhere.csv"]
    assert (inbox / "ack_again.csv").is_file()  # read again once done/ is a folder: it records nothing new


def test_cli_push_and_collect_render_counts(home: Path, monkeypatch) -> None:
    from typer.testing import CliRunner

    from lidm import cli

    settings = demo_settings(home)
    monkeypatch.setattr(cli, "get_settings", lambda: settings)
    monkeypatch.setattr(cli.console, "width", 200)
    runner = CliRunner()
    office = _busiest(settings, "civil_affairs")  # a street office
    out = runner.invoke(cli.app, ["monitor", "push", "--department", "housing", "--department", office])
    assert out.exit_code == 0, out.output
    assert re.search(rf"{re.escape(office)}\s+│\s+pushed\s+│\s+folder", out.output)
    assert re.search(r"housing\.\w+\s+│\s+pushed", out.output)  # a county bureau of housing, pushed to as well
    pushed = _read_csv(_machine_files(home / "channels" / office / "outbox")[0].read_bytes())
    respond(settings, office, seed=2, today=TODAY, faults=True)
    collected = runner.invoke(cli.app, ["monitor", "collect", "--department", office])
    assert collected.exit_code == 0, collected.output
    assert "unknown_warning 1" in collected.output and "duplicate 1" in collected.output
    assert re.search(rf"{re.escape(office)}\s+│\s+2\s+│\s+0\s+│", collected.output)  # two files, none rejected
    wrong = runner.invoke(cli.app, ["monitor", "push", "--department", "nowhere"])
    assert wrong.exit_code == 2 and "no department or office nowhere" in wrong.output
    _assert_no_personal_values(_personal_values(pushed), out.output + collected.output)


# ------------------------------------------------------------------------------------------ SFTP channel


@pytest.mark.sftp
def test_sftp_channel(home: Path, sftp_server, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    dept = "medical_insurance"
    folder = f"channel_{secrets.token_hex(4)}"

    def channel_url(known_hosts: Path) -> str:
        query = urlencode({"key": str(sftp_server.client_key), "known_hosts": str(known_hosts)})
        return f"sftp://{sftp_server.username}@{sftp_server.host}:{sftp_server.port}/{folder}/{dept}?{query}"

    url = channel_url(sftp_server.known_hosts)
    settings = demo_settings(home).model_copy(update={"channels": {dept: url}})
    remote = sftp_server.home / folder / dept
    try:
        wrong = channel_url(sftp_server.wrong_known_hosts)
        with pytest.raises(HostKeyError):
            push_warnings(settings.model_copy(update={"channels": {dept: wrong}}), departments=[dept])
        assert _one(settings, "SELECT count(*) FROM lidm_push") == 0

        (result,) = push_warnings(settings, departments=[dept], now=PUSHED_AT)
        assert result.status == "pushed" and result.channel == "sftp"
        files = _machine_files(remote / "outbox")
        assert len(files) == 1 and (remote / "outbox" / (files[0].stem + ".manifest.json")).exists()
        assert len(_read_csv(files[0].read_bytes())) == result.warnings
        target = _one(settings, "SELECT target FROM lidm_push")
        assert target == f"sftp://{sftp_server.host}:{sftp_server.port}/{folder}/{dept}/outbox/{files[0].name}"
        assert sftp_server.username not in target and "key" not in target
        assert set(_statuses(settings, dept).values()) == {"pushed"}

        answer = respond(settings, dept, seed=5, today=TODAY, faults=True)
        assert answer.warnings == result.warnings and len(answer.files) == 2
        collected = collect_dispositions(settings, departments=[dept], now=COLLECTED_AT)
        assert collected.totals()["acknowledged"] == result.warnings
        assert dict(collected.refusals) == {"unknown_warning": 1, "duplicate": 1}
        statuses = _statuses(settings, dept)
        final = sum(n for o, n in answer.outcomes.items() if o != "referred")
        assert list(statuses.values()).count("disposed") == final
        assert set(statuses.values()) <= {"acknowledged", "disposed"}
        assert sorted(p.name for p in (remote / "inbox" / "done").glob("*.csv")) == sorted(answer.files)
        assert not list((remote / "inbox").glob("*.csv"))

        before = _counts(settings)
        assert collect_dispositions(settings, departments=[dept]).totals()["rows"] == 0
        assert push_warnings(settings, departments=[dept])[0].status == "nothing"
        assert _counts(settings) == before
        ours = " ".join(r.getMessage() for r in caplog.records if r.name.startswith("lidm"))
        assert "sftp://" in ours and sftp_server.username not in ours and str(sftp_server.client_key) not in ours
    finally:
        shutil.rmtree(sftp_server.home / folder, ignore_errors=True)


# ------------------------------------------------------------------------------------------ table channel


@pytest.mark.postgres
def test_table_channel_on_postgres(tmp_path: Path, pg_clean_url: str, pg_url: str, monkeypatch, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    settings = monitored_city(tmp_path / "pg-city", pg_clean_url)
    dept = "medical_insurance"
    schema = f"dept_{secrets.token_hex(4)}"
    admin = sa.create_engine(pg_url)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    # The department's database, reached with a password that must never be shown.
    dept_url = pg_url.replace("postgres@", "postgres:s3cret-pw@")
    settings = settings.model_copy(update={"channels": {dept: f"{dept_url}#{schema}.lidm_warning"}})
    catalog = load_catalog()
    grant = warning_grant(catalog, dept)
    waiting = _one(
        settings, "SELECT count(*) FROM platform_warning WHERE target_consumer = :d AND status = 'raised'", d=dept
    )
    assert waiting > 3

    def boom(*_a, **_k):
        raise RuntimeError("crash after the department committed")

    monkeypatch.setattr(push_module, "transition", boom)
    with pytest.raises(RuntimeError):
        push_warnings(settings, departments=[dept], now=PUSHED_AT)
    monkeypatch.undo()
    (result,) = push_warnings(settings, departments=[dept], now=PUSHED_AT)
    assert (result.status, result.channel, result.warnings) == ("pushed", "table", waiting)
    assert result.target == f"postgresql://127.0.0.1:5432/{pg_url.rsplit('/', 1)[1]}#{schema}.lidm_warning"

    inspector_cols = lambda t: [c["name"] for c in sa.inspect(admin).get_columns(t, schema=schema)]  # noqa: E731
    granted = [f.name for f in catalog["platform.warning"].fields if f.name in grant.fields]
    assert inspector_cols("lidm_warning") == [*granted, "push_id", "pushed_at", "acknowledged_at", *REASON_COLUMNS]
    assert "lidm_status" in inspector_cols("lidm_warning_disposition")
    with admin.connect() as conn:
        table = conn.execute(sa.text(f"SELECT * FROM {schema}.lidm_warning")).mappings().all()
    assert len(table) == waiting  # the retry upserted: no warning twice
    assert {r["push_id"] for r in table} == {result.push_id}
    assert {r["target_department"] for r in table} == {dept}
    assert all("*" in r["name"] for r in table)  # medical insurance sees names masked
    assert set(_statuses(settings, dept).values()) == {"pushed"}
    assert push_warnings(settings, departments=[dept])[0].status == "nothing"

    answer = respond(settings, dept, seed=3, today=TODAY, faults=True)
    assert answer.warnings == waiting
    sent = sum(answer.outcomes.values()) + answer.faults
    real_begin = TableChannel.begin

    def lost_on_verdicts(channel, action):
        if action.startswith("record the verdicts"):
            raise ChannelError("connection lost after the central commit")
        return real_begin(channel, action)

    monkeypatch.setattr(TableChannel, "begin", lost_on_verdicts)
    with pytest.raises(ChannelError):
        collect_dispositions(settings, departments=[dept], now=COLLECTED_AT)
    monkeypatch.undo()
    assert _one(settings, "SELECT count(*) FROM lidm_disposition_result") == sent
    # The rows are read again: decided before, so nothing new is recorded; the verdicts reach the department.
    collected = collect_dispositions(settings, departments=[dept], now=COLLECTED_AT)
    assert (collected.totals()["unchanged"], collected.totals()["applied"]) == (sent, 0)
    assert _one(settings, "SELECT count(*) FROM lidm_disposition_result") == sent
    refused = _rows(settings, "SELECT reason FROM lidm_disposition_result WHERE status = 'refused'")
    assert sorted(r.reason.split("]")[0] for r in refused) == ["[duplicate", "[unknown_warning"]
    assert (
        _one(
            settings,
            "SELECT count(*) FROM lidm_warning_state s JOIN platform_warning w USING (warning_id) "
            "WHERE w.target_consumer = :d AND s.acknowledged_at IS NOT NULL",
            d=dept,
        )
        == waiting
    )
    statuses = _statuses(settings, dept)
    final = sum(n for o, n in answer.outcomes.items() if o != "referred")
    assert list(statuses.values()).count("disposed") == final
    assert set(statuses.values()) <= {"acknowledged", "disposed"}
    with admin.connect() as conn:
        verdicts = conn.execute(
            sa.text(f"SELECT lidm_status, count(*) FROM {schema}.lidm_warning_disposition GROUP BY 1")
        ).all()
    assert dict(verdicts) == {"applied": sum(answer.outcomes.values()), "refused": 2}

    before = _counts(settings)
    assert collect_dispositions(settings, departments=[dept]).totals()["rows"] == 0
    assert _counts(settings) == before
    assert "s3cret-pw" not in caplog.text
    assert "s3cret-pw" not in " ".join(r.target for r in _rows(settings, "SELECT target FROM lidm_push"))
    with admin.begin() as conn:
        conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


@pytest.mark.mariadb
def test_table_channel_on_mariadb_over_odbc(home: Path, mariadb_odbc) -> None:
    """The same table channel in a MariaDB department database, named by its ODBC connection string."""
    settings = demo_settings(home)
    dept = "medical_insurance"
    settings = settings.model_copy(update={"channels": {dept: f"odbc:{mariadb_odbc.odbc}#lidm_warning"}})
    (result,) = push_warnings(settings, departments=[dept], now=PUSHED_AT)
    assert (result.status, result.channel) == ("pushed", "table")
    assert result.target == f"odbc://127.0.0.1:3306/{mariadb_odbc.database}#lidm_warning"
    answer = respond(settings, dept, seed=9, today=TODAY, faults=True)
    assert answer.warnings == result.warnings
    collected = collect_dispositions(settings, departments=[dept], now=COLLECTED_AT)
    assert collected.totals()["acknowledged"] == result.warnings
    assert dict(collected.refusals) == {"unknown_warning": 1, "duplicate": 1}
    final = sum(n for o, n in answer.outcomes.items() if o != "referred")
    assert list(_statuses(settings, dept).values()).count("disposed") == final
    before = _counts(settings)
    assert collect_dispositions(settings, departments=[dept]).totals()["rows"] == 0
    assert push_warnings(settings, departments=[dept])[0].status == "nothing"
    assert _counts(settings) == before
    engine = sa.create_engine(mariadb_odbc.sqlalchemy_url)
    with engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE lidm_warning, lidm_warning_disposition"))
    engine.dispose()
