"""The SDK's shape: layers and cycles are import-linter's (pyproject.toml, run by `make test`); what it does not
check is here: no private name crosses modules, and import-linter's contracts hold."""

from __future__ import annotations

import ast
import importlib.util
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SDK = ROOT / "sdk"


def _module(path: Path) -> str:
    return ".".join(path.relative_to(SDK).with_suffix("").parts).removesuffix(".__init__")


def _is_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def _private_uses(path: Path) -> list[str]:
    """`from lidm.x import _name` and `x._name` on an imported lidm module, from another module."""
    here = _module(path)
    tree = ast.parse(path.read_text("utf-8"))
    modules: dict[str, str] = {}  # local name -> lidm module it names
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "lidm":
            for a in node.names:
                full = f"{node.module}.{a.name}"
                if a.name.startswith("_") and not a.name.startswith("__") and node.module != here:
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno} imports {a.name} from {node.module}")
                if _is_module(full):
                    modules[a.asname or a.name] = full
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.split(".")[0] == "lidm" and a.asname:
                    modules[a.asname] = a.name
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in modules
            and node.attr.startswith("_")
            and not node.attr.startswith("__")
            and modules[node.value.id] != here
        ):
            found.append(f"{path.relative_to(ROOT)}:{node.lineno} uses {modules[node.value.id]}.{node.attr}")
    return found


def test_no_private_name_crosses_modules() -> None:
    found = [use for path in sorted((SDK / "lidm").rglob("*.py")) for use in _private_uses(path)]
    assert found == [], "\n".join(found)


def test_the_import_contracts_hold() -> None:
    """Every arrow points down and no package's modules import each other in a circle (pyproject.toml)."""
    lint = Path(sys.executable).with_name("lint-imports")
    out = subprocess.run([str(lint), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]
    assert "Contracts: 2 kept, 0 broken." in out.stdout


def test_errors_say_whether_a_retry_can_help() -> None:
    """The Airflow tasks fail at once on these and let the others retry (lidm.errors.retryable)."""
    from lidm import errors

    transient = [errors.SourceError("x"), errors.CentralUnavailable("x"), errors.FeedBusy("f", "x"), OSError("x")]
    terminal = [
        errors.RejectedBatch("replay", "x"),
        errors.ConfigError("x"),
        errors.CentralSchemaBehind("x"),  # a missing table: a migration to write or apply, not a wait
        errors.ContractError("x"),
        errors.KeyringError("x"),
        errors.RuleError("x"),
        errors.HostKeyError("x"),  # a SourceError, but a changed host key is not fixed by waiting
    ]
    assert [errors.retryable(e) for e in transient] == [True] * len(transient)
    assert [errors.retryable(e) for e in terminal] == [False] * len(terminal)


def test_no_module_outside_the_sources_asks_a_source_for_its_class() -> None:
    """Callers ask a capability of the Source protocol (delivers_files, rereadable, incremental), never the class."""
    kinds = {"DropSource", "SqlSource"}
    found = []
    for path in sorted((SDK / "lidm").rglob("*.py")):
        if (SDK / "lidm" / "sources") in path.parents:
            continue
        for node in ast.walk(ast.parse(path.read_text("utf-8"))):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "isinstance":
                names = (
                    {n.id for n in ast.walk(node.args[1]) if isinstance(n, ast.Name)} if len(node.args) > 1 else set()
                )
                if names & kinds:
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert found == [], found


def test_every_setting_is_documented_in_its_section() -> None:
    """lidm.config.Settings is the one place settings are declared; the README lists each under its section."""
    import re

    from lidm.config import SECTIONS, settings_by_section

    readme = (ROOT / "README.md").read_text("utf-8")
    conf = readme[readme.index("## Configuration") : readme.index("Source connection URLs:")]
    listed: dict[str, list[str]] = {}
    for part in conf.split("**")[1::2]:
        title = part.strip()
        body = conf[conf.index(f"**{part}**") + len(part) + 4 :].split("**", 1)[0]
        listed[title] = re.findall(r"^\| `(LIDM_[A-Z_]+)` \|", body, flags=re.M)
    expected = {SECTIONS[k]: [env for env, _ in v] for k, v in settings_by_section().items()}
    assert listed == expected
    assert all(desc for v in settings_by_section().values() for _, desc in v)


def test_the_sdk_ships_no_synthetic_data() -> None:
    """The synthetic city is the lidm-samples distribution (samples/): nothing in the SDK imports it."""
    uses = [
        f"{path.relative_to(ROOT)}:{node.lineno}"
        for path in sorted((SDK / "lidm").rglob("*.py"))
        for node in ast.walk(ast.parse(path.read_text("utf-8")))
        if isinstance(node, ast.ImportFrom | ast.Import)
        and any(
            (name or "").split(".")[0] == "lidm_samples"
            for name in ([node.module] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names])
        )
    ]
    assert uses == []
    assert not (SDK / "lidm" / "samples").exists()


def test_no_module_is_over_500_lines_outside_the_migrations() -> None:
    """A module a reader cannot hold in mind is split by what it does (issue 16)."""
    long = {
        str(p.relative_to(SDK)): n
        for p in (SDK / "lidm").rglob("*.py")
        if "migrations" not in p.parts and (n := len(p.read_text("utf-8").splitlines())) > 500
    }
    assert not long, long
