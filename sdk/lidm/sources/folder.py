"""What a local folder and an SFTP folder do alike, written once: notes, atomic puts, the refusal of a link."""

from __future__ import annotations

import stat
from typing import BinaryIO

from lidm.sources.names import TEXT_LIMIT


class Folder:
    """Base of the stores: each says how to open, create and write one file; the rest is common."""

    where: str

    def open(self, name: str) -> BinaryIO:
        raise NotImplementedError

    def create(self) -> None:
        raise NotImplementedError

    def _write(self, folder: str, name: str, data: bytes) -> None:
        raise NotImplementedError

    def read_text(self, name: str) -> str:
        with self.open(name) as fh:
            return fh.read(TEXT_LIMIT).decode("utf-8", errors="replace")

    def write_text(self, name: str, text: str) -> None:
        """Write a note (receipt, reason) as NAME or FOLDER/NAME, each part one plain name."""
        folder, _, file = name.rpartition("/") if "/" in name else ("", "", name)
        self._write(folder, file, text.encode("utf-8"))

    def put(self, name: str, data: bytes, folder: str = "") -> None:
        """Write under a hidden .part name, then rename: a reader never sees half a file."""
        self.create()
        self._write(folder, name, data)


def not_a_real_folder(where: str, folder: str, mode: int) -> str:
    """Why a folder the gateway settles into was refused: it must be a real folder inside the root."""
    what = "a symlink" if stat.S_ISLNK(mode) else "not a folder"
    return (
        f"{where}/{folder} is {what}: {folder}/ must be a real folder inside the drop folder, never a link "
        "out of it; replace it with a folder (nothing was loaded or moved)"
    )
