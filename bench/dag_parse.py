"""How long each DAG file takes to parse, as Airflow's DAG processor parses it: a fresh process per parse.

    .venv/bin/python bench/dag_parse.py                 # every file in dags/, 5 parses each, quiet machine
    .venv/bin/python bench/dag_parse.py --load 2        # the same with 2 busy processes beside it

Each parse runs in its own process that has Airflow imported already (as the dag-processor's parsing child
has), then builds a `DagBag` of that one file and reports Airflow's own figure for it (`dagbag_stats`, what
`airflow dags report` prints), with bytecode kept as in a deployed image. The first parse of each file runs with
an empty compiled-catalogue folder (`LIDM_CACHE_DIR`): that is the parse after a contract changed, when every
contract is checked against the ODCS schema again. The others find the compiled catalogue. Target (issue 17):
0.3 s for every file, warm.
Not a test: the figures depend on the machine.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET_SECONDS = 0.3

CHILD = """
import json, sys, warnings
warnings.simplefilter("ignore")
import airflow.sdk, airflow.models.dagbag, argparse  # what the dag-processor has loaded before it parses
from airflow.models.dagbag import DagBag
bag = DagBag(dag_folder=sys.argv[1])
(stat,) = bag.dagbag_stats
print(json.dumps({"seconds": stat.duration.total_seconds(), "dags": stat.dag_num, "errors": len(bag.import_errors)}))
"""


def _burn(stop: multiprocessing.synchronize.Event) -> None:  # type: ignore[name-defined]
    while not stop.is_set():
        sum(i * i for i in range(10_000))


def parse(path: Path, cache: Path, airflow_home: Path) -> dict[str, float]:
    # Bytecode is kept (a deployed image has it compiled): a parse must not pay for compiling Airflow's sources.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"} | {
        "LIDM_CACHE_DIR": str(cache),
        "AIRFLOW_HOME": str(airflow_home),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{airflow_home}/airflow.db",
    }
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(path)], env=env, capture_output=True, text=True, check=True, cwd=ROOT
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dags", type=Path, default=ROOT / "dags")
    ap.add_argument("--runs", type=int, default=5, help="warm parses per file (default 5)")
    ap.add_argument("--load", type=int, default=0, help="busy processes running beside the parses")
    ap.add_argument("--json", type=Path, help="write the figures here too")
    args = ap.parse_args()

    stop = multiprocessing.Event()
    burners = [multiprocessing.Process(target=_burn, args=(stop,), daemon=True) for _ in range(args.load)]
    for b in burners:
        b.start()
    results = {}
    try:
        with tempfile.TemporaryDirectory(prefix="lidm-dag-parse-") as tmp:
            for path in sorted(args.dags.glob("*.py")):
                cache = Path(tmp) / f"cache-{path.stem}"
                home = Path(tmp) / f"airflow-{path.stem}"
                home.mkdir()
                cold = parse(path, cache, home)
                warm = [parse(path, cache, home) for _ in range(args.runs)]
                shutil.rmtree(cache, ignore_errors=True)
                seconds = [w["seconds"] for w in warm]
                results[path.name] = {
                    "dags": cold["dags"],
                    "errors": cold["errors"] + sum(w["errors"] for w in warm),
                    "cold_seconds": round(cold["seconds"], 3),
                    "warm_median_seconds": round(statistics.median(seconds), 3),
                    "warm_max_seconds": round(max(seconds), 3),
                }
    finally:
        stop.set()
        for b in burners:
            b.join()
    print(f"DAG file parse, a fresh process each (load: {args.load} busy processes; target {TARGET_SECONDS} s warm)")
    print(f"{'file':<22} {'DAGs':>5} {'errors':>6} {'cold s':>8} {'warm median s':>14} {'warm max s':>11}")
    for name, r in results.items():
        print(
            f"{name:<22} {r['dags']:>5} {r['errors']:>6} {r['cold_seconds']:>8.3f} "
            f"{r['warm_median_seconds']:>14.3f} {r['warm_max_seconds']:>11.3f}"
        )
    if args.json:
        args.json.write_text(json.dumps({"load": args.load, "files": results}, indent=1))


if __name__ == "__main__":
    main()
