"""A drop folder on the local file system: the embedded default and mounted shares.

Nothing in a drop folder leads out of it: only regular files are listed (never symlinks), a file is opened
with O_NOFOLLOW and must be a regular file once open, archive/ and rejected/ must be real folders inside the
root, and every name handed to the store is one path component. File names are bytes: they travel as str
decoded with UTF-8 ``surrogateescape`` (what os functions use), so a GBK-encoded name is opened and moved under
its own bytes, and ``display_name`` gives the form shown to people and written to the central database.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from lidm.errors import SourceError
from lidm.sources.folder import Folder, not_a_real_folder
from lidm.sources.names import Listing, check_name, display_name

log = logging.getLogger("lidm.sources")

_FOLDER = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# O_NONBLOCK: a FIFO swapped in under a drop's name must not hang the open; it has no effect on a regular file.
_READ = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


class LocalStore(Folder):
    def __init__(self, root: Path) -> None:
        self.root = root
        self._listing = Listing(str(root))

    @property
    def where(self) -> str:
        return str(self.root)

    def connect(self) -> None:
        if not self.root.is_dir():
            raise SourceError(f"{self.root}: drop folder does not exist")

    def exists(self) -> bool:
        return self.root.is_dir()

    def create(self) -> None:
        """Make the root and its parents (a department's channel folders before the first push)."""
        self.root.mkdir(parents=True, exist_ok=True)

    def child(self, folder: str) -> LocalStore:
        """The store of a folder inside this one (``a`` or ``a/b``, each part one plain name)."""
        path = self.root
        for part in folder.split("/"):
            path = path / check_name(part, self.where)
            with contextlib.suppress(FileNotFoundError):
                if not stat.S_ISDIR(os.lstat(path).st_mode):
                    raise SourceError(not_a_real_folder(self.where, folder, os.lstat(path).st_mode))
        return LocalStore(path)

    def close(self) -> None:
        return None

    @contextlib.contextmanager
    def _dir(self, folder: str = "", create: bool = False) -> Iterator[int]:
        """A descriptor of the root (the operator may point it through a link) or of a real folder inside it."""
        try:
            root = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except (FileNotFoundError, NotADirectoryError):
            raise SourceError(f"{self.root}: drop folder does not exist") from None
        try:
            if not folder:
                yield root
                return
            check_name(folder, self.where)
            if create:
                with contextlib.suppress(FileExistsError):
                    os.mkdir(folder, dir_fd=root)
            try:
                fd = os.open(folder, _FOLDER, dir_fd=root)
            except OSError as exc:
                if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
                    raise
                raise SourceError(self._not_a_folder(folder, root)) from None
            try:
                yield fd
            finally:
                os.close(fd)
        finally:
            os.close(root)

    def _not_a_folder(self, folder: str, root: int) -> str:
        return not_a_real_folder(self.where, folder, os.lstat(folder, dir_fd=root).st_mode)

    def check_folder(self, folder: str) -> None:
        """Refuse archive/ or rejected/ when it is a symlink or a file; a missing one is made when a drop settles."""
        with contextlib.suppress(FileNotFoundError), self._dir(folder):
            return

    def list(self, folder: str = "") -> list[str]:
        """Regular files in the folder, by name; symlinks, folders and devices are never drops."""
        try:
            with self._dir(folder) as fd, os.scandir(fd) as entries:
                found = list(entries)
        except FileNotFoundError:
            return []
        return self._listing.keep(
            [(e.name, e.is_file(follow_symlinks=False) and not e.is_symlink(), e.is_symlink()) for e in found]
        )

    def _open_fd(self, name: str) -> int:
        path = self.root / check_name(name, self.where)
        try:
            fd = os.open(path, _READ)
        except OSError as exc:
            if exc.errno != errno.ELOOP:
                raise
            raise SourceError(
                f"{self.where}/{display_name(name)} is a symlink; refused (drops are regular files)"
            ) from None
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise SourceError(f"{self.where}/{display_name(name)} is not a regular file; refused")
        os.set_blocking(fd, True)
        return fd

    def open(self, name: str) -> BinaryIO:
        return os.fdopen(self._open_fd(name), "rb")

    def size(self, name: str) -> int:
        """Bytes of a drop file, from lstat: checked against the feed's limit before a byte is read."""
        st = os.lstat(self.root / check_name(name, self.where))
        if not stat.S_ISREG(st.st_mode):
            raise SourceError(f"{self.where}/{display_name(name)} is not a regular file; refused")
        return st.st_size

    def mtime(self, name: str) -> float:
        """When a file was last written (seconds since the epoch), from lstat: the order files arrived in."""
        st = os.lstat(self.root / check_name(name, self.where))
        if not stat.S_ISREG(st.st_mode):
            raise SourceError(f"{self.where}/{display_name(name)} is not a regular file; refused")
        return st.st_mtime

    def _write(self, folder: str, name: str, data: bytes) -> None:
        check_name(name, self.where)
        part = f".{name}.part"
        with self._dir(folder, create=bool(folder)) as fd:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(part, dir_fd=fd)
            # O_EXCL | O_NOFOLLOW: a link planted under the part's name is never written through.
            out = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o666, dir_fd=fd)
            with os.fdopen(out, "wb") as fh:
                fh.write(data)
            os.replace(part, name, src_dir_fd=fd, dst_dir_fd=fd)

    def move(self, name: str, folder: str) -> None:
        """Move a file into archive/ or rejected/ (a real folder inside the root), keeping its raw name."""
        check_name(name, self.where)
        with self._dir() as root, self._dir(folder, create=True) as dest:
            os.replace(name, name, src_dir_fd=root, dst_dir_fd=dest)

    def restore(self, name: str, folder: str) -> None:
        """Move a file back from archive/ or rejected/ into the drop folder (an accepted held delivery)."""
        check_name(name, self.where)
        with self._dir() as root, self._dir(folder) as src:
            os.replace(name, name, src_dir_fd=src, dst_dir_fd=root)
