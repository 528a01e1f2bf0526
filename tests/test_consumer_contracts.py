"""What a consumer receives, as ODCS contracts it can test: `lidm contracts export --format odcs --consumer C`.

Without a database: every consumer's exported contracts are valid ODCS, list exactly the columns `grants apply` puts in
its views (and the test's own reading of the grants), never a stored token, ciphertext or credential.

On the real PostgreSQL server (``make services``), with the demo city loaded and grants applied (the session's
``grants_city``, which test_grants_db reads too): the real datacontract-cli, which ``make install-dev`` installs into
its own virtual environment (DATACONTRACT below), tests every exported contract of a department, a county bureau and
the platform, logged in as that consumer's own LOGIN user (a member of ``lidm_c_<consumer>`` only), and every check
passes.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import jsonschema
import pytest
import yaml
from _grants_city import City
from test_grants_db import _expected_columns
from typer.testing import CliRunner

from lidm import cli
from lidm.central.grants import deciding_grant, desired, role_name, schema_name
from lidm.central.grants.delivered import deliveries
from lidm.config import Settings
from lidm.contracts import load_catalog
from lidm.contracts.export import odcs
from lidm.contracts.load import odcs_schema
from lidm.errors import ConfigError, ContractError

# The Makefile's $(VENV)/datacontract, next to the environment running the tests (`make install-dev` makes it).
DATACONTRACT = Path(sys.executable).parent.parent / "datacontract" / "bin" / "datacontract"
BATCH = Path(__file__).with_name("_datacontract_batch.py")
WORKERS = min(4, os.cpu_count() or 1)
TESTED = ("education", "civil_affairs.furong", "platform")  # a department, a county bureau, the platform
SERVER = odcs.Server("db.example", 5433, "central")


def _yaml(text: str):  # type: ignore[no-untyped-def]
    """The document, read as yaml.safe_load reads it, with libyaml's parser: hundreds of contracts are read here."""
    return yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


@pytest.fixture
def city(grants_city: City) -> City:
    """The session's demo city with grants applied and a LOGIN user per consumer (conftest.py), read only here."""
    return grants_city


def _export(consumer: str, out: Path) -> list[Path]:
    return odcs.write(deliveries(load_catalog(), consumer), SERVER, out)


def test_every_consumers_contracts_are_odcs_and_describe_exactly_its_views(tmp_path: Path) -> None:
    catalog = load_catalog()
    validator = jsonschema.Draft202012Validator(odcs_schema())
    for wanted in desired(catalog):
        consumer = wanted.consumer.id
        grants: dict[str, list] = {}
        for contract, grant in catalog.grants_for(consumer):
            grants.setdefault(contract.id, []).append(grant)
        granted = {cid: deciding_grant(consumer, catalog[cid], gs) for cid, gs in grants.items()}
        paths = _export(consumer, tmp_path / consumer)
        assert sorted(p.name for p in paths) == sorted(f"{v.contract}.odcs.yaml" for v in wanted.views), consumer
        for path, view in zip(sorted(paths), sorted(wanted.views, key=lambda v: v.contract), strict=True):
            text = path.read_text("utf-8")
            doc = _yaml(text)
            if consumer in TESTED:  # write() validated every one already; this is the test's own look
                validator.validate(doc)
            (obj,) = doc["schema"]
            columns = [p["name"] for p in obj["properties"]]
            assert columns == list(view.columns) == _expected_columns(catalog[view.contract], granted[view.contract])
            assert not any(col.endswith("_enc") or col.startswith("_") for col in columns)
            (server,) = doc["servers"]
            assert server == server | {"type": "postgres", "host": "db.example", "port": 5433, "database": "central"}
            assert server["schema"] == schema_name(consumer) == view.schema
            assert server["roles"][0]["role"] == role_name(consumer)
            assert obj["physicalName"] == view.name and obj["physicalType"] == "view"
            custom = {p["property"]: p["value"] for p in doc["customProperties"]}
            assert custom["lidmConsumer"] == consumer and custom["lidmRows"] == granted[view.contract].rows.value
            assert "password" not in text.lower() and "user" not in server
            for prop in obj["properties"]:
                level = {p["property"]: p["value"] for p in prop["customProperties"]}
                if prop["name"].endswith("_token"):
                    assert level["lidmGrantLevel"] == "token" and level["lidmDelivered"] == "pseudonym"
                    assert prop["physicalType"] == "text" and prop["logicalTypeOptions"]["pattern"] == "^[0-9a-f]{64}$"
                elif prop["name"].endswith("_masked"):
                    assert level["lidmGrantLevel"] == "masked" and prop["physicalType"] == "text"


def test_a_county_bureaus_contract_carries_its_row_scope_and_what_it_does_not_receive(tmp_path: Path) -> None:
    (path,) = [p for p in _export("civil_affairs.furong", tmp_path) if p.name.startswith("civil_affairs.low_income")]
    doc = _yaml(path.read_text("utf-8"))
    custom = {p["property"]: p["value"] for p in doc["customProperties"]}
    assert custom["lidmRows"] == "own_districts" and custom["lidmRowFilter"] == {"district_code": ["430102"]}
    assert custom["lidmGrantedTo"] == "county_civil_affairs"
    assert set(custom["lidmWithheld"]) == {"id_number", "name", "phone"}  # granted clear, stored only encrypted
    props = {p["name"]: p for p in doc["schema"][0]["properties"]}
    assert {"id_number", "name", "phone", "id_number_token"}.isdisjoint(props)
    scope = props["district_code"]["quality"][-1]
    assert scope["metric"] == "invalidValues" and scope["arguments"]["validValues"] == ["430102"]
    assert props["monthly_amount"]["physicalType"] == "numeric(18, 4)"
    assert "430102" in doc["description"]["limitations"]


def test_the_server_is_postgresql_and_carries_no_credential() -> None:
    server = odcs.Server.from_url("postgresql+psycopg://gateway:s3cret@db.internal:6432/lidm")
    assert server == odcs.Server("db.internal", 6432, "lidm")
    assert "s3cret" not in repr(server)
    for url in ("sqlite:////tmp/central.db", "postgresql+psycopg://gateway:s3cret@db.internal/", "not a url"):
        with pytest.raises(ConfigError) as info:
            odcs.Server.from_url(url)
        assert "s3cret" not in str(info.value)
    with pytest.raises(ContractError, match="no consumer nobody"):
        deliveries(load_catalog(), "nobody")


def test_the_cli_exports_one_consumer_and_refuses_what_it_cannot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = "postgresql+psycopg://gateway:s3cret@db.internal:5432/lidm"
    monkeypatch.setattr(cli, "get_settings", lambda: Settings(home=tmp_path, central_url=url))
    args = ["contracts", "export", "--format", "odcs", "--consumer", "education", "--out", str(tmp_path / "out")]
    out = CliRunner().invoke(cli.app, args)
    assert out.exit_code == 0, out.output
    assert len(list((tmp_path / "out").glob("*.odcs.yaml"))) == len(_export("education", tmp_path / "again"))
    assert "s3cret" not in out.output
    for args, says in (
        (["--format", "odcs"], "add --consumer"),
        (["--format", "odcs", "--consumer", "nobody"], "no consumer nobody"),
        (["--format", "html", "--consumer", "education"], "--consumer goes with --format odcs"),
    ):
        out = CliRunner().invoke(cli.app, ["contracts", "export", *args, "--out", str(tmp_path / "x")])
        assert out.exit_code == 2 and says in out.output, out.output
    monkeypatch.setattr(cli, "get_settings", lambda: Settings(home=tmp_path, central_url=None))
    out = CliRunner().invoke(cli.app, ["contracts", "export", "--format", "odcs", "--consumer", "education"])
    assert out.exit_code == 2 and "only on PostgreSQL" in out.output, out.output


# --------------------------------------------------------------------------- the real datacontract-cli


def _datacontract(city: City, consumer: str, contracts: list[Path], results: Path) -> dict[str, tuple[int, dict]]:
    """`datacontract test` on each contract as the consuming team runs it, logged in as the consumer's own LOGIN user:
    its exit status and JSON report by file name. The contracts share one start of datacontract-cli
    (tests/_datacontract_batch.py runs the CLI's own `test` command on each in turn)."""
    if not DATACONTRACT.exists():
        pytest.fail(f"{DATACONTRACT} is missing; run `make install-dev` (it installs datacontract-cli)", pytrace=False)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATACONTRACT_", "PG"))}
    env |= {
        "DATACONTRACT_POSTGRES_USERNAME": city.users[consumer],
        # PostgreSQL here trusts local logins; datacontract-cli insists on a password, which it then ignores.
        "DATACONTRACT_POSTGRES_PASSWORD": "unused",
    }
    results.mkdir(parents=True, exist_ok=True)
    run = subprocess.run(
        [str(DATACONTRACT.with_name("python")), str(BATCH), str(results), *map(str, contracts)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        cwd=contracts[0].parent,
    )
    codes_file = results / "exit-codes.jsonl"
    lines = codes_file.read_text("utf-8").splitlines() if codes_file.exists() else []
    codes = {c["contract"]: c["code"] for c in map(json.loads, lines)}
    printed = dict(re.findall(r"(?ms)^=== (\S+)\n(.*?)(?=^=== |\Z)", run.stdout))
    out = {}
    for contract in contracts:
        report_file = results / f"{contract.stem}.json"
        report = json.loads(report_file.read_text("utf-8")) if report_file.exists() else {}
        said = printed.get(contract.name, run.stdout)[-3000:] + run.stderr[-3000:]
        # A contract the process never finished has no exit status of its own: it failed.
        out[contract.name] = codes.get(contract.name, run.returncode or -1), report | {"_stdout": said}
    return out


def _failures(report: dict) -> list[str]:
    checks = report.get("checks", [])
    return [f"{c.get('name')}: {c.get('result')} {c.get('reason') or ''}" for c in checks if c["result"] != "passed"]


@pytest.mark.postgres
@pytest.mark.parametrize("consumer", TESTED)
def test_datacontract_cli_passes_every_check_on_a_consumers_own_views(
    city: City,
    consumer: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(cli, "get_settings", lambda: Settings(home=tmp_path, central_url=city.url))
    args = ["contracts", "export", "--format", "odcs", "--consumer", consumer, "--out", str(tmp_path / "contracts")]
    out = CliRunner().invoke(cli.app, args)
    assert out.exit_code == 0, out.output
    paths = sorted((tmp_path / "contracts").glob("*.odcs.yaml"))
    assert len(paths) == len(next(w for w in desired(city.catalog) if w.consumer.id == consumer).views) > 0
    chunks = [c for c in (paths[i::WORKERS] for i in range(WORKERS)) if c]  # a process per core, each its share
    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        runs: dict[str, tuple[int, dict]] = {}
        for done in pool.map(
            lambda i: _datacontract(city, consumer, chunks[i], tmp_path / f"results{i}"), range(len(chunks))
        ):
            runs |= done
        passed = {}
        for path in paths:
            code, report = runs[path.name]
            assert code == 0 and report.get("result") == "passed", (path.name, _failures(report), report["_stdout"])
            assert report["checks"] and not _failures(report), path.name
            columns = {p["name"] for p in _yaml(path.read_text("utf-8"))["schema"][0]["properties"]}
            typed = {c["field"] for c in report["checks"] if c["type"] == "field_physical_type"}
            assert typed == columns, path.name  # each column's type was read from PostgreSQL's catalogue
            passed[path.name] = len(report["checks"])
    print(f"{consumer}: {len(passed)} contracts, {sum(passed.values())} checks passed")


@pytest.mark.postgres
def test_datacontract_cli_fails_a_contract_the_view_does_not_match(city: City, tmp_path: Path) -> None:
    """The checks bite: a type the view does not have, or a row outside the scope, is a failed run."""
    (path,) = [p for p in _export("civil_affairs.furong", tmp_path) if p.name.startswith("civil_affairs.low_income")]
    doc = _yaml(path.read_text("utf-8"))
    doc["servers"][0] |= {"host": "127.0.0.1", "port": 5432, "database": city.database}
    props = {p["name"]: p for p in doc["schema"][0]["properties"]}
    props["monthly_amount"]["physicalType"] = "bigint"
    props["district_code"]["quality"][-1]["arguments"]["validValues"] = ["430103"]  # another county's district
    path.write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False), "utf-8")
    ((code, report),) = _datacontract(city, "civil_affairs.furong", [path], tmp_path / "results").values()
    assert code != 0 and report.get("result") == "failed", report["_stdout"]
    failed = " ".join(_failures(report))
    assert "monthly_amount" in failed and "district_code" in failed, failed
