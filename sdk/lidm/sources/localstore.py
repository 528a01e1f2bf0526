"""A drop folder on the local file system: the embedded default and mounted shares."""

from __future__ import annotations

import os
from pathlib import Path
from typing import BinaryIO

from lidm.errors import SourceError


class LocalStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    @property
    def where(self) -> str:
        return str(self.root)

    def connect(self) -> None:
        if not self.root.is_dir():
            raise SourceError(f"{self.root}: drop folder does not exist")

    def close(self) -> None:
        return None

    def list(self, folder: str = "") -> list[str]:
        self.connect()
        base = self.root / folder
        return sorted(p.name for p in base.iterdir() if p.is_file()) if base.is_dir() else []

    def open(self, name: str) -> BinaryIO:
        return (self.root / name).open("rb")

    def read_text(self, name: str) -> str:
        return (self.root / name).read_text("utf-8", errors="replace")

    def write_text(self, name: str, text: str) -> None:
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, "utf-8")

    def put(self, name: str, data: bytes) -> None:
        """Write under a hidden .part name, then rename: a reader never sees half a file."""
        self.root.mkdir(parents=True, exist_ok=True)
        part = self.root / f".{name}.part"
        part.write_bytes(data)
        os.replace(part, self.root / name)

    def move(self, name: str, folder: str) -> None:
        (self.root / folder).mkdir(parents=True, exist_ok=True)
        os.replace(self.root / name, self.root / folder / Path(name).name)
