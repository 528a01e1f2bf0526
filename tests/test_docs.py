"""The adapter guide shows the real adapter files, so a team copying from it copies what passes the kit."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tomllib
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from pathlib import Path

import pytest
import sqlalchemy as sa
import yaml
from _veterans import CONSUMERS, DEPARTMENT, FEED, add_department
from conftest import _throwaway_pg_database

ROOT = Path(__file__).resolve().parent.parent
GUIDE = ROOT / "docs" / "write-your-adapter.md"


def _example(heading: str) -> str:
    text = GUIDE.read_text("utf-8")
    section = text[text.index(heading) :]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_worked_examples_are_the_reference_adapters():
    assert _example("## Worked example A") == (ROOT / "adapters/civil_affairs/low_income_roster.py").read_text("utf-8")
    assert _example("## Worked example B") == (ROOT / "adapters/health/population.py").read_text("utf-8")


def test_the_guide_names_every_check_of_the_kit():
    from lidm.testkit import CHECKS

    text = GUIDE.read_text("utf-8")
    assert all(f"| `{check}` |" in text for check in CHECKS)
    assert "README" not in text or "write-your-adapter" in (ROOT / "README.md").read_text("utf-8")


def test_the_guides_sample_declaration_is_the_one_the_tests_verify():
    text = GUIDE.read_text("utf-8")
    section = text[text.index("### Synthetic rows for a new dataset") :]
    example = re.search(r"```yaml\n(.*?)```", section, re.S).group(1)
    assert example == (ROOT / "tests/veterans_department/veterans/entitled_persons.sample.yaml").read_text("utf-8")


# --------------------------------------------------------------------------- docs/add-a-dataset.md, executed

ADD = ROOT / "docs" / "add-a-dataset.md"
STEPS = [
    "lint", "grants", "gate", "revision", "upgrade", "scaffold", "install", "sample", "keys", "verify", "run",
    "publish",
]  # fmt: skip


def _guide_steps() -> list[tuple[str, str]]:
    """The guide's shell blocks marked ``<!-- run: NAME -->``, in order."""
    return re.findall(r"<!-- run: (\w+) -->\n```sh\n(.*?)```", ADD.read_text("utf-8"), re.S)


def _guide_block(heading: str) -> str:
    """The first YAML block under a heading of the guide."""
    text = ADD.read_text("utf-8")
    return re.search(r"```yaml\n(.*?)```", text[text.index(heading) :], re.S).group(1)


def _sdk_status() -> set[str]:
    out = subprocess.run(["git", "status", "--porcelain", "sdk/"], cwd=ROOT, capture_output=True, text=True, check=True)
    return set(out.stdout.splitlines())


def _department_venv(root: Path) -> Path:
    """The department's own environment, where `pip install -e` of its package changes nothing of this one: a new
    virtual environment that sees this one's packages (lidm among them) through a .pth file, so nothing is
    downloaded, with `pip` and `lidm` commands of its own."""
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    (site,) = (venv / "lib").glob("python3*/site-packages")
    (site / "lidm_beside.pth").write_text(f"import site; site.addsitedir({sysconfig.get_path('purelib')!r})\n")
    python = venv / "bin" / "python"
    for command, entry in (
        ("pip", "from pip._internal.cli.main import main"),
        ("lidm", "from lidm.cli import app as main"),
    ):
        launcher = venv / "bin" / command
        launcher.write_text(f"#!{python}\nimport sys\n{entry}\nsys.exit(main())\n", "utf-8")
        launcher.chmod(0o755)
    return venv / "bin"


def _fill_in_the_adapter(package: Path) -> None:
    """What the team does between scaffolding and installing, outside the guide's commands: fill in the adapter
    (the finished one from tests/veterans_department) and write the sample declaration beside it."""
    scaffolded = (package / "veterans" / "entitled_persons.py").read_text("utf-8")
    assert 'contract="veterans.entitled_persons"' in scaffolded and "TODO_" in scaffolded
    project = tomllib.loads((package / "pyproject.toml").read_text("utf-8"))
    assert project["project"]["entry-points"]["lidm.adapters"] == {FEED: "veterans.entitled_persons:adapter"}
    for name in ("entitled_persons.py", "entitled_persons.sample.yaml"):
        shutil.copy(DEPARTMENT / "veterans" / name, package / "veterans" / name)


def test_the_guides_contract_and_consumer_are_the_worked_example():
    assert _guide_block("## 1. The contract") == (DEPARTMENT / "contracts/veterans/entitled_persons.yaml").read_text()
    assert _guide_block("## 2. Consumers and grants") == CONSUMERS.read_text("utf-8")


def test_the_guides_are_linked():
    assert "docs/add-a-dataset.md" in (ROOT / "README.md").read_text("utf-8")
    assert "(add-a-dataset.md)" in GUIDE.read_text("utf-8")


def _run_the_guide(root: Path, central_url: str | None) -> tuple[dict[str, str], dict[str, str]]:
    """Every marked block of docs/add-a-dataset.md, in order, in `root`: the guide's contract and consumer in a copy of
    the catalogue, the deployment's migrations there too, the department's package installed with pip into an
    environment of its own. The environment the blocks ran in, and what each printed (whitespace folded)."""
    shutil.copytree(ROOT / "contracts", root / "contracts")
    add_department(root / "contracts", _guide_block("## 1. The contract"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LIDM_", "PIP_"))}
    env.update(
        PATH=f"{_department_venv(root)}{os.pathsep}{env.get('PATH', '')}",
        LIDM_HOME=str(root / ".lidm"),
        LIDM_CONTRACTS_DIR=str(root / "contracts"),
        LIDM_MIGRATIONS_DIR=str(root / "migrations"),
        COLUMNS="200",
        # the package is built with the setuptools this environment has, not one downloaded for the build
        PIP_NO_BUILD_ISOLATION="0",
        PIP_NO_INDEX="1",
        PIP_DISABLE_PIP_VERSION_CHECK="1",
    )
    if central_url is not None:
        env["LIDM_CENTRAL_URL"] = central_url
    said: dict[str, str] = {}
    for name, script in _guide_steps():
        done = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script], cwd=root, env=env, capture_output=True, text=True
        )
        said[name] = " ".join(done.stdout.split())
        assert done.returncode == 0, f"step {name}:\n{script}\n{done.stdout}\n{done.stderr}"
        if name == "scaffold":
            _fill_in_the_adapter(root / "veterans_gateway")
    return env, said


@pytest.fixture(scope="module")
def guide_runs(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[set[str], dict[str, Future]]]:
    """The guide run on SQLite and on PostgreSQL at once (the backends of the tests selected), each in a folder and a
    database of its own: each run is a chain of single-threaded commands, so the two keep both cores busy. The SDK's
    git status before them, and each backend's run (its folder, environment and output) as it will be once done."""
    backends = {
        item.callspec.params["backend"]
        for item in request.session.items
        if getattr(item, "originalname", None) == "test_a_dataset_is_added_by_running_the_guide"
    }
    sdk_before = _sdk_status()
    with contextlib.ExitStack() as stack:
        url = stack.enter_context(_throwaway_pg_database()) if "postgres" in backends else None
        pool = stack.enter_context(ThreadPoolExecutor(max_workers=2))
        runs = {
            backend: pool.submit(
                lambda folder, central: (folder, *_run_the_guide(folder, central)),
                tmp_path_factory.mktemp(f"guide-{backend}"),
                url if backend == "postgres" else None,
            )
            for backend in sorted(backends)
        }
        yield sdk_before, runs


@pytest.mark.timeout(600)  # the first to run waits out both backends' runs, which share the cores
@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_a_dataset_is_added_by_running_the_guide(backend, guide_runs):
    """Every marked block of docs/add-a-dataset.md, in order, in a folder of its own (see `_run_the_guide`), and what
    the guide says each step does is what it did."""
    from lidm_samples.declared import FAULT_REASONS

    assert [name for name, _ in _guide_steps()] == STEPS
    sdk_before, runs = guide_runs
    tmp_path, env, said = runs[backend].result()
    assert "0 errors, 0 warnings" in said["lint"], said["lint"]
    county, own = said["grants"].split("veterans: ", 1)
    assert re.search(r"veterans\.entitled_persons .*own_districts", county), county
    assert "id_number=masked" in own and "id_number=token" not in own
    (migration,) = (tmp_path / "migrations").glob("*.py")
    assert migration.name == "datasets_0001_veterans_entitled_persons.py"
    upgrade = migration.read_text("utf-8").split("def upgrade")[1].split("def downgrade")[0]
    assert re.findall(r"op\.create_table\('(\w+)'", upgrade) == ["veterans_entitled_persons"]
    assert "datasets_0001" in said["upgrade"]
    assert "Successfully installed veterans-gateway" in said["install"], said["install"]

    declared = yaml.safe_load((DEPARTMENT / "veterans" / "entitled_persons.sample.yaml").read_text("utf-8"))["faults"]
    reasons = {FAULT_REASONS[kind] for kind in declared}
    assert f"{FEED}: CONFORMS" in said["verify"], said["verify"]
    report = json.loads((tmp_path / "reports" / f"{FEED}.json").read_text("utf-8"))
    quarantine = next(c for c in report["checks"] if c["name"] == "quarantine")
    assert set(quarantine["figures"]["rows"]) == reasons
    loads = next(c for c in report["checks"] if c["name"] == "loads")["figures"]
    assert loads["quarantined"] == 2 * len(declared) + 2  # two rows of each kind; a duplicated key, both copies

    assert f"{FEED} quarantine reasons:" in said["run"], said["run"]
    url = env.get("LIDM_CENTRAL_URL", f"sqlite:///{tmp_path / '.lidm' / 'central.db'}")
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            loaded = conn.execute(sa.text("SELECT count(*) FROM veterans_entitled_persons")).scalar_one()
            held = conn.execute(sa.text("SELECT reason FROM lidm_quarantine WHERE feed = :f"), {"f": FEED}).scalars()
            held = list(held)
    finally:
        engine.dispose()
    assert loaded == loads["loaded"] and len(held) == loads["quarantined"] and set(held) == reasons
    assert FEED in json.loads((tmp_path / "contracts" / "catalog.lock.json").read_text("utf-8"))
    wait(runs.values())  # the other backend's run too: neither wrote into the SDK
    assert _sdk_status() == sdk_before  # nothing written into the SDK
    if backend == "postgres":
        _a_county_bureau_reads_its_own_districts(tmp_path, env)


def _a_county_bureau_reads_its_own_districts(tmp_path: Path, env: dict[str, str]) -> None:
    """After `lidm grants apply` (section 10), the county grant the guide wrote shows 芙蓉区 only its own rows."""
    from lidm.central.grants import role_name, schema_name

    done = subprocess.run(["lidm", "grants", "apply"], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    engine = sa.create_engine(env["LIDM_CENTRAL_URL"])
    try:
        with engine.connect() as conn:
            everywhere = conn.execute(
                sa.text("SELECT count(DISTINCT district_code) FROM veterans_entitled_persons")
            ).scalar_one()
            own = conn.execute(
                sa.text(
                    "SELECT count(*) FROM veterans_entitled_persons "
                    "WHERE _retired_batch IS NULL AND district_code = '430102'"
                )
            ).scalar_one()
            conn.execute(sa.text(f'SET ROLE "{role_name("civil_affairs.furong")}"'))
            seen = conn.execute(
                sa.text(
                    f'SELECT district_code, count(*) FROM "{schema_name("civil_affairs.furong")}".'
                    "veterans_entitled_persons GROUP BY district_code"
                )
            ).all()
            conn.execute(sa.text("RESET ROLE"))
            conn.rollback()
    finally:
        engine.dispose()
    assert everywhere > 1 and own > 0
    assert seen == [("430102", own)]


# --------------------------------------------------------------------------- docs/for-departments.md

FOR_DEPARTMENTS = ROOT / "docs" / "for-departments.md"


def test_the_department_guide_says_what_the_platform_takes_and_refuses():
    """Every outcome and assistance kind with its label and code, every accepted date form and every refusal code
    the result files use: the guide a caseworker follows says what the code does."""
    from lidm.contracts.load import load_catalog
    from lidm.monitor import results
    from lidm.monitor.answers import DATE_FORMS, TIME_FORMS

    text = FOR_DEPARTMENTS.read_text("utf-8")
    chinese, english = text.split("## English")
    contract = load_catalog()["platform.disposition"]
    for name in ("outcome", "assistance_kind"):
        f = contract.field(name)
        for code, label in zip(f.enum, f.enum_labels, strict=True):
            assert f"{label}（{code}）" in chinese, (name, code)
    for f in contract.fields:
        if f.name not in ("disposition_id", "household_id", "updated_at"):
            assert re.search(rf"\| (?:[^|]*、)?{f.business_name}(?:、[^|]*)? \|", chinese), f.name
    for form in (*DATE_FORMS, *TIME_FORMS):
        assert f"`{form}`" in chinese and f"`{form}`" in english, form
    for code in results._CODE_FIELD:
        assert f"`{code}`" in chinese, code
    for code in ("encoding", "header", "delimiter", "merged_cells", "missing_sheet"):
        assert code in results._WHOLE_FILE and f"`{code}`" in chinese
    assert "docs/for-departments.md" in (ROOT / "README.md").read_text("utf-8")
