"""The distribution's shape: one package `lidm`, adapters found by entry point, nothing generic on sys.path."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from importlib.metadata import distribution, entry_points

from lidm.registry import GROUP, adapters


def test_no_generic_top_level_packages_are_importable(tmp_path):
    # From a neutral folder, so only what the installed distribution exposes is on the path.
    code = "import importlib.util as u; print([n for n in ('adapters', 'sdk', 'contracts', 'dags') if u.find_spec(n)])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=tmp_path)
    assert out.stdout.strip() == "[]"
    assert importlib.util.find_spec("lidm_adapters") is not None


def test_distribution_and_console_script():
    dist = distribution("lidm-gateway")
    assert any(ep.name == "lidm" and ep.value == "lidm.cli:app" for ep in dist.entry_points)
    assert dist.metadata["Requires-Python"] == ">=3.11"


def test_reference_adapters_are_found_by_module_path():
    found = adapters()
    assert {"health.population", "civil_affairs.low_income_roster"} <= set(found)
    assert found["health.population"].contract == "health.population"
    assert not list(entry_points(group=GROUP)), "reference adapters need no entry point; the group is for departments"


def test_sdk_imports_without_airflow():
    code = "import sys, lidm, lidm.pipeline, lidm.cli, lidm_samples.demo; print('airflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False", "the SDK must not import Airflow at module level"


def test_adapters_use_only_the_public_sdk_api():
    import lidm

    for path in importlib.util.find_spec("lidm_adapters").submodule_search_locations or []:
        for module in __import__("pathlib").Path(path).rglob("*.py"):
            if True:
                for line in module.read_text("utf-8").splitlines():
                    if line.startswith("from lidm_adapters."):
                        continue  # a department's shared code tables, next to its adapters
                    if line.startswith(("from lidm", "import lidm")):
                        assert line.startswith("from lidm import "), f"{module}: {line}"
                        names = [n.strip() for n in line.removeprefix("from lidm import ").split(",")]
                        assert set(names) <= set(lidm.__all__), f"{module}: {line}"
