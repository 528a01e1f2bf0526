"""The adapter guide shows the real adapter files, so a team copying from it copies what passes the kit."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
import yaml

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
DEPARTMENT = ROOT / "tests" / "veterans_department"
FEED = "veterans.entitled_persons"
STEPS = ["lint", "gate", "revision", "upgrade", "scaffold", "sample", "keys", "verify", "run", "publish"]


def _guide_steps() -> list[tuple[str, str]]:
    """The guide's shell blocks marked ``<!-- run: NAME -->``, in order."""
    return re.findall(r"<!-- run: (\w+) -->\n```sh\n(.*?)```", ADD.read_text("utf-8"), re.S)


def _guide_contract() -> str:
    text = ADD.read_text("utf-8")
    return re.search(r"```yaml\n(.*?)```", text[text.index("## 1. The contract") :], re.S).group(1)


def _sdk_status() -> set[str]:
    out = subprocess.run(["git", "status", "--porcelain", "sdk/"], cwd=ROOT, capture_output=True, text=True, check=True)
    return set(out.stdout.splitlines())


def _install_the_department(package: Path) -> None:
    """What the team does between scaffolding and sampling, outside the guide's commands: fill in the adapter (the
    finished one from tests/veterans_department), write the sample declaration beside it, and install the package.
    `pip install -e` would change this virtual environment, so a dist-info with the entry point, on PYTHONPATH,
    stands in for it (as tests/test_samples_declared.py does for the command line)."""
    scaffolded = (package / "veterans" / "entitled_persons.py").read_text("utf-8")
    assert 'contract="veterans.entitled_persons"' in scaffolded and "TODO_" in scaffolded
    for name in ("entitled_persons.py", "entitled_persons.sample.yaml"):
        shutil.copy(DEPARTMENT / "veterans" / name, package / "veterans" / name)
    info = package / "veterans_gateway-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: veterans-gateway\nVersion: 1.0\n", "utf-8")
    (info / "entry_points.txt").write_text(f"[lidm.adapters]\n{FEED} = veterans.entitled_persons:adapter\n", "utf-8")


def test_the_guides_contract_is_the_worked_example():
    assert _guide_contract() == (DEPARTMENT / "contracts" / "veterans" / "entitled_persons.yaml").read_text("utf-8")


def test_the_guides_are_linked():
    assert "docs/add-a-dataset.md" in (ROOT / "README.md").read_text("utf-8")
    assert "(add-a-dataset.md)" in GUIDE.read_text("utf-8")


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_a_dataset_is_added_by_running_the_guide(tmp_path, backend, request):
    """Every marked block of docs/add-a-dataset.md, in order, in a folder of its own: the guide's contract in a copy
    of the catalogue, the deployment's migrations there too, the department's package on PYTHONPATH."""
    from lidm_samples.declared import FAULT_REASONS

    steps = _guide_steps()
    assert [name for name, _ in steps] == STEPS
    sdk_before = _sdk_status()
    shutil.copytree(ROOT / "contracts", tmp_path / "contracts")
    (tmp_path / "contracts" / "veterans").mkdir()
    (tmp_path / "contracts" / "veterans" / "entitled_persons.yaml").write_text(_guide_contract(), "utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIDM_")}
    env.update(
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        PYTHONPATH=os.pathsep.join(filter(None, [str(tmp_path / "veterans_gateway"), env.get("PYTHONPATH")])),
        LIDM_HOME=str(tmp_path / ".lidm"),
        LIDM_CONTRACTS_DIR=str(tmp_path / "contracts"),
        LIDM_MIGRATIONS_DIR=str(tmp_path / "migrations"),
        COLUMNS="200",
    )
    if backend == "postgres":
        env["LIDM_CENTRAL_URL"] = request.getfixturevalue("pg_clean_url")
    said: dict[str, str] = {}
    for name, script in steps:
        done = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True
        )
        said[name] = " ".join(done.stdout.split())
        assert done.returncode == 0, f"step {name}:\n{script}\n{done.stdout}\n{done.stderr}"
        if name == "scaffold":
            _install_the_department(tmp_path / "veterans_gateway")

    assert "0 errors, 0 warnings" in said["lint"], said["lint"]
    (migration,) = (tmp_path / "migrations").glob("*.py")
    assert migration.name == "datasets_0001_veterans_entitled_persons.py"
    upgrade = migration.read_text("utf-8").split("def upgrade")[1].split("def downgrade")[0]
    assert re.findall(r"op\.create_table\('(\w+)'", upgrade) == ["veterans_entitled_persons"]
    assert "datasets_0001" in said["upgrade"]

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
    assert _sdk_status() == sdk_before  # nothing written into the SDK
