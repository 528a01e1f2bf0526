"""The compiled catalogue: a folder's checked contracts, kept between processes so a DAG parses in a blink.

Checking the contracts against the ODCS JSON Schema costs over a second of CPU, and every Airflow parse and task
start-up loaded the catalogue. Now it is checked once per content: the key is a SHA-256 of every contract
file's path and bytes, the consumers file, the ODCS schema and the code that reads them, so an edited contract
(or another lidm) is checked again before it is used, and a malformed one is still refused.

The compiled form is a pickle in the user's cache folder (``LIDM_CACHE_DIR``, else ``$XDG_CACHE_HOME/lidm``,
else ``~/.cache/lidm``), written 0600 in a 0700 folder, and read only when this user owns it and no one else may
write it or its folder: whoever could write it could already change the gateway's own code. Anything wrong
with it (unreadable, from another Python) means the catalogue is checked afresh, never an error.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.resources
import logging
import os
import pickle
import stat
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

log = logging.getLogger("lidm.contracts")
T = TypeVar("T")
_CODE = ("load.py", "model.py", "consumers.py", "compiled.py")
KEEP = 16  # compiled catalogues kept: the newest, one per content seen lately (edits, test folders)


def cache_dir() -> Path:
    explicit = os.environ.get("LIDM_CACHE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "lidm"


def fingerprint(directory: Path, consumers_file: str) -> str:
    """What the catalogue of ``directory`` depends on, as one digest."""
    # The folder's own name too: contracts remember the file they came from, for messages.
    h = hashlib.sha256(f"python {sys.version_info[:2]}\0{directory.resolve()}\0{directory}\0".encode())
    here = Path(__file__).parent
    for name in _CODE:
        h.update(name.encode() + b"\0" + (here / name).read_bytes() + b"\0")
    schema = importlib.resources.files("open_data_contract_standard") / "schema.json"
    h.update(schema.read_bytes())
    paths = sorted(directory.glob("*/*.yaml"))
    if (directory / consumers_file).exists():
        paths.append(directory / consumers_file)
    for path in paths:
        h.update(str(path.relative_to(directory)).encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()


def _trusted(path: Path) -> bool:
    """Owned by this user and writable by no one else, the file and its folder."""
    for p in (path.parent, path):
        st = os.lstat(p)
        if st.st_uid != os.getuid() or st.st_mode & (stat.S_IWGRP | stat.S_IWOTH) or stat.S_ISLNK(st.st_mode):
            return False
    return True


def cached(key: str, build: Callable[[], T]) -> T:
    """The compiled value for ``key``, else ``build()`` (its errors propagate) kept for the next process."""
    folder = cache_dir()
    path = folder / f"catalog-{key[:32]}.pickle"
    with contextlib.suppress(OSError, pickle.UnpicklingError, EOFError, AttributeError, ImportError, TypeError):
        if path.is_file() and _trusted(path):
            with path.open("rb") as fh:
                return pickle.load(fh)  # our own file, checked above
    value = build()
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".catalog-", suffix=".part")
        with os.fdopen(fd, "wb") as fh:
            pickle.dump(value, fh, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, path)
        for old in sorted(folder.glob("catalog-*.pickle"), key=lambda p: p.stat().st_mtime, reverse=True)[KEEP:]:
            old.unlink(missing_ok=True)
    except OSError as exc:  # a read-only home: every process checks the contracts itself, as before
        log.debug("compiled catalogue not kept in %s (%s)", folder, type(exc).__name__)
    return value
