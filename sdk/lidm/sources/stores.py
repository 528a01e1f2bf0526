"""The transport layer for files: a folder on this machine (or a mounted share) or on an SFTP server.

Drop feeds read from it, warning pushes write to it and the disposition pickup reads and settles through it, so
every folder the gateway touches has the same guarantees (see localstore and sftp): only regular files, never a
link out of the folder, names as their raw bytes, atomic writes under a hidden ``.part`` name.
"""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO, Protocol
from urllib.parse import unquote, urlsplit

from lidm.config import Settings
from lidm.sources.localstore import LocalStore


class Store(Protocol):
    """What drop feeds, pushes and pickups need of a folder; `where` names it without a credential."""

    where: str

    def connect(self) -> object: ...
    def close(self) -> None: ...
    def exists(self) -> bool: ...
    def create(self) -> None: ...
    def child(self, folder: str) -> Store: ...
    def list(self, folder: str = "") -> list[str]: ...
    def open(self, name: str) -> BinaryIO: ...
    def size(self, name: str) -> int: ...
    def read_text(self, name: str) -> str: ...
    def write_text(self, name: str, text: str) -> None: ...
    def put(self, name: str, data: bytes, folder: str = "") -> None: ...
    def move(self, name: str, folder: str) -> None: ...
    def restore(self, name: str, folder: str) -> None: ...
    def check_folder(self, folder: str) -> None: ...


def open_store(url: str, settings: Settings) -> Store:
    """sftp://… for a folder on an SFTP server, file:///… or a plain path for a local one."""
    if url.startswith("sftp://"):
        from lidm.sources.sftp import SftpStore, SftpTarget  # paramiko loads when an SFTP folder is opened

        return SftpStore(SftpTarget.from_url(url, settings.known_hosts), timeout=settings.sftp_timeout_seconds)
    if url.startswith("file://"):
        return LocalStore(Path(unquote(urlsplit(url).path)))
    return LocalStore(Path(url))
