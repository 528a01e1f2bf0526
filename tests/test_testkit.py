"""The adapter test kit: it passes what conforms, fails what does not, and its leak scanner finds leaks."""

from __future__ import annotations

import dataclasses
import json
import logging
import subprocess
import sys
from pathlib import Path
from types import MappingProxyType

import pyarrow as pa
import pytest
from lidm_samples.catalog import write_sources
from lidm_samples.sources import Servers, bank_card
from lidm_samples.world import build_world

from lidm import Convert, codes
from lidm.registry import get_adapter, refresh
from lidm.testkit import CHECKS, FAIL, PASS, SKIP, AdapterConformance, Scanner, kinds_in, verify
from lidm.testkit.scaffold import PLACEHOLDER, scaffold

ROSTER = "civil_affairs.low_income_roster"
POPULATION = "health.population"


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Every sample source, written once to files (SQLite databases and local drop folders)."""
    root = tmp_path_factory.mktemp("sources")
    return write_sources(build_world(600, 20261127), Servers(root), bad=6, datasets=[POPULATION, ROSTER])


def _status(report) -> dict[str, str]:
    return {c.name: c.status for c in report.checks}


# --------------------------------------------------------------------------- the scanner


def test_scanner_finds_personal_numbers_by_their_checksums():
    assert kinds_in("申请人 430102198001010011 来电") == ["id_number"]
    assert kinds_in("legacy 430102800101001") == ["id_number"]
    assert kinds_in("电话13812345678") == ["phone"]
    card = bank_card(__import__("random").Random(1))
    assert kinds_in(f"card {card}") == ["bank_card"]
    # A wrong check character, a masked number, a token and a ciphertext are not findings.
    assert kinds_in("430102198001010012") == []
    assert kinds_in("430102********0011 138****5678") == []
    assert kinds_in("9f" * 32) == []
    assert kinds_in("1:q83vEjRWeJA0YrfQx2XO2Q8c4pJ8mQ==") == []


def test_scanner_looks_for_known_raw_values_and_never_repeats_them():
    scanner = Scanner()
    scanner.learn(["13812345678", "430102198001010011"])
    scanner.learn(["张三丰"], whole_only=True)
    scanner.scan("contact 13812345678 today", "log line 1")
    scanner.scan("张三丰", "table t.name row 1")
    scanner.scan("张三丰路 12号", "table t.address row 1")  # a street named like a person is no leak
    kinds = [(f.where, f.kind) for f in scanner.findings]
    assert ("log line 1", "phone") in kinds and ("log line 1", "known_value") in kinds
    assert ("table t.name row 1", "name") in kinds
    assert not any("address" in w for w, _ in kinds)
    assert all("13812345678" not in str(f) and "张三丰" not in str(f) for f in scanner.findings)


# --------------------------------------------------------------------------- the kit on good adapters


@pytest.mark.parametrize("name", [POPULATION, ROSTER])
def test_reference_adapters_conform_against_their_sample_sources(files, name):
    report = verify(name, connections=files.connections)
    statuses = _status(report)
    assert report.passed, report.markdown()
    assert list(statuses) == list(CHECKS)
    assert statuses["protection"] == PASS and statuses["idempotent"] == PASS
    loads = next(c for c in report.checks if c.name == "loads")
    written = files.by_dataset()[name]
    assert loads.figures["extracted"] == written.rows
    assert loads.figures["quarantined"] == written.expected_quarantine
    # The source is untouched: the drop is still in the inbox, not archived.
    if written.where.startswith("file:"):
        inbox = Path(files.connections[written.connection].removeprefix("file://"))
        assert (inbox / written.where.removeprefix("file:")).exists()
        assert not (inbox / "archive").exists()


def test_the_report_is_markdown_and_json_without_personal_data(files):
    report = verify(ROSTER, connections=files.connections)
    text = report.markdown() + json.dumps(report.as_dict(), ensure_ascii=False)
    assert "# Conformance report: `civil_affairs.low_income_roster`" in text and "CONFORMS" in text
    assert kinds_in(text) == []


# --------------------------------------------------------------------------- the kit on bad adapters


def test_a_wrong_code_table_fails_sample_validation(files):
    adapter = get_adapter(ROSTER)
    wrong = dataclasses.replace(adapter, mapping={**adapter.mapping, "status": codes("保障状态", {"有效": "active"})})
    report = verify(wrong, connections=files.connections)
    check = next(c for c in report.checks if c.name == "sample_validates")
    assert check.status == FAIL and "status:enum" in check.detail
    assert not report.passed


def test_a_missing_source_column_fails_the_columns_check_and_stops(files):
    adapter = get_adapter(ROSTER)
    wrong = dataclasses.replace(adapter, mapping={**adapter.mapping, "phone": "手机号码"})
    report = verify(wrong, connections=files.connections)
    statuses = _status(report)
    assert (statuses["columns"] == FAIL and "手机号码" in report.checks[-2].detail) or statuses["columns"] == FAIL
    assert "loads" not in statuses  # nothing is loaded from a source that does not match


class _Leaky(Convert):
    """An adapter conversion that logs what it sees: exactly the mistake the scanner exists for."""

    def apply(self, values: pa.Array) -> pa.Array:
        logging.getLogger("department.debug").info("first value %s", values[0].as_py())
        return values


def test_the_leak_scanner_catches_a_raw_id_number_in_the_logs(files):
    adapter = get_adapter(POPULATION)
    leaky = dataclasses.replace(adapter, mapping={**adapter.mapping, "id_number": _Leaky("sfzh")})
    report = verify(leaky, connections=files.connections)
    check = next(c for c in report.checks if c.name == "protection")
    assert check.status == FAIL and "log line" in check.detail and "id_number" in check.detail
    assert kinds_in(report.markdown()) == []  # the report names the leak, never the value


def test_a_drop_folder_without_a_complete_drop_fails_connects(tmp_path):
    (tmp_path / "roster_1.csv").write_text("x")  # no .ok marker: still being written
    report = verify(ROSTER, connections={"civil_affairs_drop": tmp_path.as_uri()})
    assert _status(report) == {"mapping": PASS, "connects": FAIL, "protection": SKIP}
    assert "no complete drop" in report.checks[1].detail


# --------------------------------------------------------------------------- scaffold, CLI, pytest


def test_a_scaffolded_adapter_fails_until_mapped_then_conforms(files, tmp_path, monkeypatch):
    import lidm_adapters

    into = tmp_path / "adapters"
    into.mkdir()
    monkeypatch.setattr(lidm_adapters, "__path__", [*lidm_adapters.__path__, str(into)])
    made = scaffold("civil_affairs", "low_income_roster", kind="csv", connection="civil_affairs_drop", into=into)
    text = made.adapter.read_text("utf-8")
    from lidm.contracts import load_catalog

    fields = load_catalog()["civil_affairs.low_income_roster"].fields
    assert text.count(PLACEHOLDER) == len(fields) and 'contract="civil_affairs.low_income_roster"' in text

    namespace: dict = {}
    exec(compile(text, str(made.adapter), "exec"), namespace)
    report = verify(namespace["adapter"], connections=files.connections)
    assert _status(report)["mapping"] == FAIL and "placeholder" in report.checks[0].detail

    # What the team does next: name its columns (here, the reference adapter's) and verify again.
    reference = get_adapter(ROSTER)
    mapped = dataclasses.replace(namespace["adapter"], mapping=reference.mapping, source=reference.source)
    assert verify(mapped, connections=files.connections).passed
    refresh()


def test_cli_sample_then_verify_writes_the_report(tmp_path):
    out = tmp_path / "src"
    lidm = [str(Path(sys.executable).parent / "lidm")]
    made = subprocess.run(
        [*lidm, "sample", "--size", "400", "--out", str(out), "--dataset", ROSTER], capture_output=True, text=True
    )
    assert made.returncode == 0, made.stdout + made.stderr
    assert json.loads((out / "connections.json").read_text())["civil_affairs_drop"].startswith("file://")
    checked = subprocess.run(
        [*lidm, "adapter", "verify", ROSTER, "--connections", str(out / "connections.json"), "--report", str(tmp_path)],
        capture_output=True,
        text=True,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "CONFORMS" in checked.stdout
    assert "CONFORMS" in (tmp_path / f"{ROSTER}.md").read_text("utf-8")
    failed = subprocess.run(
        [
            *lidm,
            "adapter",
            "verify",
            ROSTER,
            "--connections",
            json.dumps({"civil_affairs_drop": str(tmp_path / "none")}),
        ],
        capture_output=True,
        text=True,
    )
    assert failed.returncode == 1 and "DOES NOT CONFORM" in failed.stdout


def test_pytest_plugin_runs_one_test_per_check(files, tmp_path):
    conns = tmp_path / "connections.json"
    conns.write_text(json.dumps(files.connections))
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "--rootdir",
            str(tmp_path),
            "--lidm-adapter",
            ROSTER,
            "--lidm-connections",
            str(conns),
            "--lidm-report",
            str(tmp_path / "r"),
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert f"{len(CHECKS) - 1} passed, 1 skipped" in run.stdout
    assert (tmp_path / "r" / f"{ROSTER}.json").exists()


class TestRosterAsADepartmentWouldWriteIt(AdapterConformance):
    """The base class a department's own test module derives from."""

    adapter = ROSTER

    @pytest.fixture(scope="class")
    @classmethod
    def lidm_connections(cls, tmp_path_factory):
        root = tmp_path_factory.mktemp("dept")
        return write_sources(build_world(300, 5), Servers(root), bad=2, datasets=[ROSTER]).connections


def test_the_base_class_has_one_test_per_check():
    assert [n for n in dir(AdapterConformance) if n.startswith("test_")] == sorted(f"test_{c}" for c in CHECKS)


def test_a_second_adapter_is_allowed_for_incremental_contracts_only(tmp_path):
    from lidm.errors import ConfigError

    with pytest.raises(ConfigError, match="full snapshot"):
        scaffold("civil_affairs", "low_income_roster", name="roster_db", into=tmp_path)
    made = scaffold("justice", "legal_aid", name="legal_aid_db", kind="sql", into=tmp_path, tests=tmp_path / "t")
    assert made.feed == "justice.legal_aid_db" and made.adapter.name == "legal_aid_db.py"
    assert 'adapter = "justice.legal_aid_db"' in made.test.read_text("utf-8")
    for line in made.adapter.read_text("utf-8").splitlines():
        assert len(line) <= 120  # long code lists wrap instead of being cut
    assert "labour_arbitration" in made.adapter.read_text("utf-8")
    refresh()


def test_a_package_of_ones_own_gets_a_project_that_registers_each_adapter_or_is_told_what_to_add(tmp_path):
    """The first adapter scaffolded into a folder writes its pyproject.toml; a later one never edits it but says the
    line that registers it, and nothing when that line is there."""
    import tomllib

    first = scaffold("justice", "legal_aid", kind="sql", into=tmp_path)
    assert first.project == tmp_path / "pyproject.toml" and first.register is None
    declared = tomllib.loads(first.project.read_text("utf-8"))
    assert declared["project"]["entry-points"]["lidm.adapters"] == {"justice.legal_aid": "justice.legal_aid:adapter"}
    assert declared["project"]["dependencies"] == ["lidm-gateway"]  # what lidm is installed as
    before = first.project.read_text("utf-8")
    second = scaffold("justice", "legal_aid", name="legal_aid_db", kind="sql", into=tmp_path)
    assert second.project is None and first.project.read_text("utf-8") == before
    assert '"justice.legal_aid_db" = "justice.legal_aid_db:adapter"' in second.register
    again = scaffold("justice", "legal_aid", kind="sql", into=tmp_path, force=True)
    assert again.project is None and again.register is None
    (tmp_path / "pyproject.toml").write_text("[project\n", "utf-8")
    broken = scaffold("justice", "legal_aid", kind="sql", into=tmp_path, force=True)
    assert "not valid TOML" in broken.register
    refresh()


def test_two_registered_feeds_of_one_full_snapshot_refuse_to_run(files, monkeypatch, gateway_sqlite):
    from lidm import registry
    from lidm.errors import ConfigError
    from lidm.pipeline import run_feed

    found, broken = registry._scan()
    twin = dataclasses.replace(found[ROSTER], name="civil_affairs.roster_copy")
    monkeypatch.setattr(registry, "_scan", lambda: ({**found, twin.name: twin}, broken))
    with pytest.raises(ConfigError, match="retire each other's rows"):
        run_feed(ROSTER, gateway_sqlite.settings, connections=files.connections)


def test_the_quarantine_check_lists_source_rows_per_reason(files):
    report = verify(ROSTER, connections=files.connections)
    check = next(c for c in report.checks if c.name == "quarantine")
    assert "(rows " in check.detail
    assert all(isinstance(n, int) for numbers in check.figures["rows"].values() for n in numbers)


def test_integer_code_keys_match_numeric_columns():
    assert codes("ajlx", {1: "civil", "10": "received"}).apply(pa.array([1, 10, 7])).to_pylist() == [
        "civil",
        "received",
        "7",
    ]


class TestWithoutAnyConnectionIsSkipped(AdapterConformance):
    """A scaffolded test in a checkout with no test source: skipped with the reason, not failed."""

    adapter = "housing.public_rental_housing"
    connections = MappingProxyType({})


def test_sample_to_a_server_that_is_down_says_which_and_why(tmp_path):
    from lidm.errors import SourceError

    down = Servers(tmp_path, mariadb_odbc="DRIVER={MariaDB Unicode};SERVER=127.0.0.1;PORT=1;UID=root;PWD=")
    with pytest.raises(SourceError, match=r"health\.population: the mariadb server refused the write"):
        write_sources(build_world(300, 1), down, datasets=["health.population"])


def test_a_scaffolded_comment_never_cuts_a_code_in_two():
    """Long code lists wrap between codes: every code of every field stands whole on one comment line, and no
    line is longer than ruff allows."""
    from lidm.contracts import load_catalog
    from lidm.testkit.scaffold import render_adapter

    for contract in load_catalog():
        lines = render_adapter(contract, "sql", "x_db").splitlines()
        assert max(len(line) for line in lines) <= 120, contract.id
        comments = [line.split("#", 1)[1] for line in lines if "#" in line]
        words = {w.strip(",") for comment in comments for w in comment.split()}
        for f in contract.fields:
            missing = [code for code in f.enum or () if code not in words]
            assert not missing, (contract.id, f.name, missing)
