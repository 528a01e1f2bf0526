"""`lidm adapter new`: a department team's starting point, written from the contract itself.

The adapter it writes lists every contract field with its type, whether it is required, its codes and
its Chinese name, mapped to a placeholder column; `lidm adapter verify` then fails on each placeholder
until the team has named its real column, so nothing is forgotten silently.
"""

from __future__ import annotations

import re
import textwrap
import tomllib
from dataclasses import dataclass
from pathlib import Path

from lidm.contracts import Contract, load_catalog
from lidm.contracts.load import ContractCatalog
from lidm.contracts.model import LogicalType, UpdateMode
from lidm.errors import ConfigError

PLACEHOLDER = "TODO_"
SOURCE_KINDS = ("sql", "csv", "xlsx")


@dataclass
class Scaffold:
    adapter: Path
    test: Path | None
    feed: str
    project: Path | None = None  # the package's pyproject.toml, when this call wrote it
    register: str | None = None  # what to add to an existing pyproject.toml that does not register the adapter


def _comment(contract: Contract, name: str) -> str:
    f = contract.field(name)
    parts = [f.type.value, "required" if f.required else "optional"]
    if f.primary_key:
        parts.append("key")
    if f.enum:
        parts.append("codes " + " | ".join(f.enum))
    if f.type is LogicalType.DATE:
        parts.append("wrap in date(col, '<format>')")
    if f.unit:
        parts.append(f"in {f.unit}")
    if f.business_name:
        parts.append(f.business_name)
    return ", ".join(parts)


def _source(contract: Contract, kind: str, connection: str) -> str:
    if kind == "sql":
        watermark = f', watermark="{PLACEHOLDER}{contract.watermark}"' if contract.watermark else ""
        return f'SqlSource(connection="{connection}", table="{PLACEHOLDER}table"{watermark})'
    stem = contract.id.split(".", 1)[1]
    if kind == "xlsx":
        return f'DropSource(connection="{connection}", pattern="{stem}_*.xlsx", format="xlsx", marker=".ok")'
    return f'DropSource(connection="{connection}", pattern="{stem}_*.csv", encoding="gbk", marker=".ok")'


def render_adapter(contract: Contract, kind: str, connection: str) -> str:
    """The adapter module's text."""
    imports = ["Adapter", "SqlSource" if kind == "sql" else "DropSource"]
    lines = [
        f'"""{contract.title}: TODO say where this comes from (system, table or file, who maintains it)."""',
        "",
        f"from lidm import {', '.join(sorted(imports))}",
        "",
        "# Map every contract field to your source column. Wrap a column in a conversion where your values",
        "# differ: codes(col, {'1': 'male'}), labels(col) for the contract's own Chinese labels, date(col, '%Y%m%d'),",
        "# fen_to_yuan(col) (import them from lidm).",
        "# Set an optional field to None if your system does not have it. List columns you deliberately",
        "# do not share in ignore=.",
        "adapter = Adapter(",
        f'    contract="{contract.id}",',
        f"    source={_source(contract, kind, connection)},",
        "    mapping={",
    ]
    for f in contract.fields:
        entry = f'        "{f.name}": "{PLACEHOLDER}{f.name}",'
        comment = _comment(contract, f.name)
        if len(entry) + len(comment) + 4 <= 120:
            lines.append(f"{entry}  # {comment}")
        else:
            lines += [
                f"        # {part}"
                for part in textwrap.wrap(comment, 110, break_on_hyphens=False, break_long_words=False)
            ] + [entry]
    lines += ["    },", "    ignore=(),", f'    pool="{contract.department}",', ")", ""]
    return "\n".join(lines)


def render_test(contract: Contract, connection: str, feed: str) -> str:
    cls = "".join(part.title() for part in feed.replace(".", "_").split("_"))
    return "\n".join(
        [
            f'"""Conformance of the {contract.id} adapter: run with pytest (connections from LIDM_CONNECTIONS)."""',
            "",
            "from lidm.testkit import AdapterConformance",
            "",
            "",
            f"class Test{cls}(AdapterConformance):",
            f'    adapter = "{feed}"',
            "    # Connections come from --lidm-connections or LIDM_CONNECTIONS; or set them here:",
            f'    # connections = {{"{connection}": "URL of a test copy of your source"}}',
            "",
        ]
    )


def default_adapters_dir() -> Path:
    """The reference adapters package of this checkout, where a contributed adapter belongs."""
    import lidm_adapters

    return Path(next(iter(lidm_adapters.__path__)))


def scaffold(
    department: str,
    dataset: str,
    *,
    kind: str = "sql",
    connection: str | None = None,
    into: Path | None = None,
    tests: Path | None = None,
    force: bool = False,
    contracts_dir: Path | None = None,
    name: str | None = None,
) -> Scaffold:
    """Write adapters/<department>/<name or dataset>.py (and a conformance test) for an existing contract.

    `name` makes a second adapter for the same contract (another source system of the same data); it
    is only allowed for incremental contracts, since two full snapshots would retire each other's rows.
    """
    if kind not in SOURCE_KINDS:
        raise ConfigError(f"source kind {kind!r}: use one of {', '.join(SOURCE_KINDS)}")
    catalog = load_catalog(contracts_dir)
    contract_id = f"{department}.{dataset}"
    if contract_id not in catalog:
        mine = sorted(c for c in catalog.ids() if c.startswith(f"{department}."))
        hint = f"contracts of {department}: {', '.join(mine)}" if mine else f"departments: {_departments(catalog)}"
        raise ConfigError(f"no contract {contract_id}; {hint}")
    contract = catalog[contract_id]
    module = name or dataset
    if not module.isidentifier():
        raise ConfigError(f"adapter name {module!r} must be a Python identifier (letters, digits, _)")
    if module != dataset and contract.update_mode is UpdateMode.FULL:
        raise ConfigError(
            f"{contract_id} is a full snapshot: it has exactly one feed, since two would retire each other's rows; "
            f"to read it from another system, edit adapters/{department}/{dataset}.py instead"
        )
    feed = f"{department}.{module}"
    connection = connection or f"{department}_{'db' if kind == 'sql' else 'drop'}"
    folder = (into or default_adapters_dir()) / department
    target = folder / f"{module}.py"
    if target.exists() and not force:
        raise ConfigError(f"{target} exists; pass --force to overwrite it")
    folder.mkdir(parents=True, exist_ok=True)
    init = folder / "__init__.py"
    if not init.exists():
        init.write_text(f'"""{department} datasets."""\n', "utf-8")
    target.write_text(render_adapter(contract, kind, connection), "utf-8")
    test_path = None
    if tests is not None:
        tests.mkdir(parents=True, exist_ok=True)
        test_path = tests / f"test_{department}_{module}.py"
        if not test_path.exists() or force:
            test_path.write_text(render_test(contract, connection, feed), "utf-8")
    project = register = None
    if into is not None:
        project, register = _package_project(into, department, module, feed)
    from lidm.registry import refresh

    refresh()
    return Scaffold(target, test_path, feed, project, register)


def render_project(folder: Path, department: str, module: str, feed: str) -> str:
    """The pyproject.toml of a department's own adapter package: lidm finds its adapters through the
    `lidm.adapters` entry-point group once it is installed beside lidm, and the sample declarations travel with it."""
    name = re.sub(r"[^A-Za-z0-9.]+", "-", folder.resolve().name).strip("-").lower() or f"{department}-gateway"
    return textwrap.dedent(
        f"""\
        # {department}'s lidm adapters: `pip install -e {folder.name}` beside lidm registers each adapter below.
        [build-system]
        requires = ["setuptools>=64"]
        build-backend = "setuptools.build_meta"

        [project]
        name = "{name}"
        version = "0.1.0"
        requires-python = ">=3.11"
        dependencies = ["{_distribution()}"]

        # One line per adapter: "<feed>" = "<module>:adapter".
        [project.entry-points."lidm.adapters"]
        "{feed}" = "{department}.{module}:adapter"

        [tool.setuptools.packages.find]
        include = ["{department}*"]

        [tool.setuptools.package-data]
        "*" = ["*.sample.yaml"]
        """
    )


def _distribution() -> str:
    """The name lidm is installed under (the import name and the distribution's differ)."""
    from importlib.metadata import packages_distributions

    return next(iter(packages_distributions().get("lidm", [])), "lidm-gateway")


def _package_project(folder: Path, department: str, module: str, feed: str) -> tuple[Path | None, str | None]:
    """Write the package's pyproject.toml if it has none; otherwise say what registers the adapter if it does not."""
    path = folder / "pyproject.toml"
    line = f'"{feed}" = "{department}.{module}:adapter"'
    if not path.exists():
        path.write_text(render_project(folder, department, module, feed), "utf-8")
        return path, None
    try:
        declared = tomllib.loads(path.read_text("utf-8"))
    except tomllib.TOMLDecodeError as exc:
        return None, f"{path} is not valid TOML ({exc}); register the adapter there: {line}"
    entries = declared.get("project", {}).get("entry-points", {}).get("lidm.adapters", {})
    if feed in entries:
        return None, None
    return None, f'add to {path}, under [project.entry-points."lidm.adapters"]: {line}; then reinstall the package'


def _departments(catalog: ContractCatalog) -> str:
    return ", ".join(sorted({c.department for c in catalog}))
