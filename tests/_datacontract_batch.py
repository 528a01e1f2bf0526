"""Run `datacontract test` on several contracts in one process; tests/test_consumer_contracts.py runs it.

Usage: python tests/_datacontract_batch.py RESULTS_DIR CONTRACT [CONTRACT ...]   (datacontract-cli's own python)

Each contract goes through the CLI's own `test` command (the typer app the `datacontract` script runs), with the
arguments a consuming team passes: `--server central --output-format json --output RESULTS_DIR/<stem>.json`.
Starting datacontract-cli costs seconds of imports; a consumer's contracts share one start instead of one each.
Each contract's exit status (what `datacontract test` would have exited with) is one JSON line of
RESULTS_DIR/exit-codes.jsonl, written as soon as its run ends; what it printed follows a line `=== <file name>`.
"""

from __future__ import annotations

import json
import sys
import traceback
from pathlib import Path


def main(results: str, *contracts: str) -> int:
    from datacontract.cli import app

    out = Path(results)
    for contract in map(Path, contracts):
        print(f"=== {contract.name}", flush=True)
        args = ["test", str(contract), "--server", "central", "--output-format", "json"]
        try:
            code = app([*args, "--output", str(out / f"{contract.stem}.json")], standalone_mode=False)
        except SystemExit as exc:
            code = exc.code
        except Exception as exc:  # the `datacontract` script prints it and exits 1 (a usage error: 2)
            traceback.print_exc()
            code = getattr(exc, "exit_code", 1)
        sys.stdout.flush()
        with (out / "exit-codes.jsonl").open("a", encoding="utf-8") as codes:
            codes.write(json.dumps({"contract": contract.name, "code": code or 0}) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
