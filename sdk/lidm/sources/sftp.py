"""SFTP over paramiko with strict host-key checking: unknown or changed keys are refused, never added."""

from __future__ import annotations

import contextlib
import io
import logging
import posixpath
import stat
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import parse_qs, unquote, urlsplit

import paramiko
from paramiko.sftp import CMD_CLOSE, CMD_HANDLE, CMD_NAME, CMD_OPENDIR, CMD_READDIR

from lidm.errors import ConfigError, HostKeyError, SourceError
from lidm.sources.folder import Folder, not_a_real_folder
from lidm.sources.names import Listing, check_name, display_name, raw_name

log = logging.getLogger("lidm.sources")

READ_TIMEOUT_SECONDS = 60.0  # default of LIDM_SFTP_TIMEOUT_SECONDS


class _GuardedFile(io.RawIOBase):
    """A remote file whose transport faults (connection dropped, read timed out) surface as SourceError, so
    the run is retried instead of failing with a paramiko internal."""

    def __init__(self, fh: Any, where: str) -> None:
        super().__init__()
        self._fh, self._where = fh, where

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        try:
            data = self._fh.read(len(buffer))
        except (OSError, EOFError, paramiko.SSHException) as exc:
            raise SourceError(
                f"SFTP {self._where}: connection lost while reading ({type(exc).__name__}); nothing was loaded, "
                "the run can be retried"
            ) from None
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        with contextlib.suppress(OSError, EOFError, paramiko.SSHException):
            self._fh.close()
        super().close()


@dataclass(frozen=True)
class SftpTarget:
    host: str
    port: int
    username: str
    path: str
    key_file: Path | None
    known_hosts: Path | None
    password: str | None = None

    @classmethod
    def from_url(cls, url: str, default_known_hosts: Path | None = None) -> SftpTarget:
        """sftp://user@host:port/dir?key_file=PATH&known_hosts=PATH (dir relative to the login folder)."""
        parts = urlsplit(url)
        if parts.scheme != "sftp" or not parts.hostname or not parts.username:
            raise ConfigError("an SFTP connection looks like sftp://user@host:port/dir?key_file=...&known_hosts=...")
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        kh = query.get("known_hosts") or (str(default_known_hosts) if default_known_hosts else None)
        return cls(
            host=parts.hostname,
            port=parts.port or 22,
            username=unquote(parts.username),
            path=_drop_path(unquote(parts.path)),
            key_file=Path(query["key_file"]) if query.get("key_file") else None,
            known_hosts=Path(kh) if kh else None,
            password=unquote(parts.password) if parts.password else None,
        )


def _drop_path(path: str) -> str:
    """URL paths are relative to the login folder, as with scp; a double slash makes them absolute."""
    if path.startswith("//"):
        return path[1:]
    return path.lstrip("/") or "."


class _Session:
    """One SSH connection, shared by a store and the stores of its sub-folders (a channel's outbox and inbox)."""

    def __init__(self, target: SftpTarget, timeout: float) -> None:
        self.target, self.timeout = target, timeout
        self._client: paramiko.SSHClient | None = None
        self._sftp: paramiko.SFTPClient | None = None

    def connect(self) -> paramiko.SFTPClient:
        if self._sftp is not None:
            return self._sftp
        t = self.target
        if t.known_hosts is None or not t.known_hosts.exists():
            raise HostKeyError(
                f"no known_hosts for {t.host}:{t.port}: set known_hosts in the connection (host keys are verified, "
                "never trusted on first use)"
            )
        client = paramiko.SSHClient()
        client.load_host_keys(str(t.known_hosts))
        client.set_missing_host_key_policy(paramiko.RejectPolicy())
        try:
            client.connect(
                t.host,
                port=t.port,
                username=t.username,
                key_filename=str(t.key_file) if t.key_file else None,
                password=t.password,
                look_for_keys=False,
                allow_agent=False,
                timeout=20,
                banner_timeout=20,
            )
        except paramiko.BadHostKeyException as exc:
            raise HostKeyError(
                f"host key of {t.host}:{t.port} has CHANGED (server offers {exc.key.get_name()} "
                f"{exc.key.fingerprint}); refusing to connect. If the server was re-keyed, update {t.known_hosts}."
            ) from None
        except paramiko.SSHException as exc:
            if "not found in known_hosts" in str(exc):
                raise HostKeyError(
                    f"host {t.host}:{t.port} is not in {t.known_hosts}; refusing an unknown host key. "
                    "Add its verified key with ssh-keyscan after checking the fingerprint."
                ) from None
            raise SourceError(f"SFTP {t.host}:{t.port}: {type(exc).__name__}: {exc}") from None
        except OSError as exc:
            raise SourceError(f"SFTP {t.host}:{t.port} unreachable: {exc.strerror or exc}") from None
        self._client = client
        self._sftp = client.open_sftp()
        # A server that stops answering mid-transfer (no FIN: a dead link) must end the read, not hang it.
        self._sftp.get_channel().settimeout(self.timeout)
        return self._sftp

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
        self._client = self._sftp = None


class SftpStore(Folder):
    """A drop folder on an SFTP server."""

    def __init__(
        self, target: SftpTarget, timeout: float = READ_TIMEOUT_SECONDS, session: _Session | None = None
    ) -> None:
        self.target = target
        self.timeout = timeout
        self.root = target.path
        self._session = session or _Session(target, timeout)
        self._listing = Listing(self.where)

    @property
    def where(self) -> str:
        return f"sftp://{self.target.host}:{self.target.port}{self.root}"

    def connect(self) -> paramiko.SFTPClient:
        return self._session.connect()

    def close(self) -> None:
        self._session.close()

    def child(self, folder: str) -> SftpStore:
        """The store of a folder inside this one (``a`` or ``a/b``), over the same connection."""
        path = self.root
        for part in folder.split("/"):
            path = posixpath.join(path, check_name(part, self.where)) if path != "." else part
            try:
                mode = self.connect().lstat(raw_name(path)).st_mode or 0
            except FileNotFoundError:
                continue
            if not stat.S_ISDIR(mode):
                raise SourceError(not_a_real_folder(self.where, folder, mode))
        return SftpStore(replace(self.target, path=path), self.timeout, self._session)

    def exists(self) -> bool:
        try:
            return stat.S_ISDIR(self.connect().lstat(self._p()).st_mode or 0)
        except FileNotFoundError:
            return False

    def create(self) -> None:
        """Make the root one level at a time (SFTP has no mkdir -p); a part that is not a folder is refused."""
        sftp = self.connect()
        path = b"/" if self.root.startswith("/") else b""
        for part in [p for p in raw_name(self.root).split(b"/") if p and p != b"."]:
            path = posixpath.join(path, part) if path else part
            try:
                st = sftp.stat(path)
            except FileNotFoundError:
                sftp.mkdir(path)
                continue
            if not stat.S_ISDIR(st.st_mode or 0):
                raise SourceError(
                    f"{self.where}: {display_name(part.decode('utf-8', 'surrogateescape'))} is not a folder"
                )

    def _p(self, *parts: str) -> bytes:
        """A path under the root as bytes: names keep their own bytes (GBK and all) on the wire."""
        return posixpath.join(raw_name(self.root), *(raw_name(p) for p in parts if p))

    def _listdir(self, folder: str) -> list[paramiko.SFTPAttributes]:
        """READDIR keeping each name's bytes; paramiko's listdir decodes names as strict UTF-8 and fails on a
        GBK-encoded one, which would block every drop next to it."""
        sftp = self.connect()
        kind, msg = sftp._request(CMD_OPENDIR, self._p(folder))
        if kind != CMD_HANDLE:
            raise SourceError(f"{self.where}/{folder}: the server did not open the folder for listing")
        handle = msg.get_binary()
        found = []
        try:
            while True:
                try:
                    kind, msg = sftp._request(CMD_READDIR, handle)
                except EOFError:
                    break
                if kind != CMD_NAME:
                    raise SourceError(f"{self.where}/{folder}: unexpected answer to a folder listing")
                for _ in range(msg.get_int()):
                    name = msg.get_string().decode("utf-8", "surrogateescape")
                    longname = msg.get_string()
                    attr = paramiko.SFTPAttributes._from_msg(msg, name, longname)
                    if name not in (".", ".."):
                        found.append(attr)
        finally:
            with contextlib.suppress(OSError, EOFError, paramiko.SSHException):
                sftp._request(CMD_CLOSE, handle)
        return found

    def list(self, folder: str = "") -> list[str]:
        """Regular files in the folder (the server's READDIR attributes are lstat's: a symlink is no drop)."""
        if folder:
            check_name(folder, self.where)
        try:
            attrs = self._listdir(folder)
        except FileNotFoundError:
            if folder:
                return []
            raise SourceError(f"{self.where}/{folder}: drop folder does not exist") from None
        return self._listing.keep(
            [(a.filename, stat.S_ISREG(a.st_mode or 0), stat.S_ISLNK(a.st_mode or 0)) for a in attrs]
        )

    def _regular(self, name: str) -> paramiko.SFTPAttributes:
        st = self.connect().lstat(self._p(check_name(name, self.where)))
        if not stat.S_ISREG(st.st_mode or 0):
            what = "a symlink" if stat.S_ISLNK(st.st_mode or 0) else "not a regular file"
            raise SourceError(f"{self.where}/{display_name(name)} is {what}; refused (drops are regular files)")
        return st

    def size(self, name: str) -> int:
        """Bytes of a drop file, from lstat: checked against the feed's limit before a byte is read."""
        return self._regular(name).st_size or 0

    def mtime(self, name: str) -> float:
        """When a file was last written (seconds since the epoch), from lstat: the order files arrived in."""
        return float(self._regular(name).st_mtime or 0)

    def open(self, name: str) -> BinaryIO:
        """Open a regular file, never a symlink: lstat first, then check the open handle is that same file."""
        before = self._regular(name)
        fh = self.connect().open(self._p(name), "rb")
        after = fh.stat()
        if not stat.S_ISREG(after.st_mode or 0) or (after.st_size, after.st_mtime) != (before.st_size, before.st_mtime):
            fh.close()
            raise SourceError(
                f"{self.where}/{display_name(name)} changed while it was opened (replaced or linked); "
                "nothing was read, the run can be retried"
            )
        fh.prefetch(after.st_size)
        guarded = _GuardedFile(fh, f"{self.where}/{display_name(name)}")
        return io.BufferedReader(guarded, 1 << 20)  # type: ignore[return-value]

    def _write(self, folder: str, name: str, data: bytes) -> None:
        check_name(name, self.where)
        if folder:
            self.ensure_folder(folder)
        sftp = self.connect()
        part = self._p(folder, f".{name}.part")
        with contextlib.suppress(FileNotFoundError):
            sftp.remove(part)
        # "x": create exclusively, so a link planted under the part's name is never written through.
        with sftp.open(part, "wx") as fh:
            fh.write(data)
        self._replace(part, self._p(folder, name))

    def _replace(self, src: bytes, dest: bytes) -> None:
        sftp = self.connect()
        try:
            sftp.posix_rename(src, dest)  # atomic replace on OpenSSH servers; replaces a link, never follows it
            return
        except (FileNotFoundError, PermissionError):
            raise
        except OSError:
            pass  # the server lacks posix-rename: remove, then rename (never remove before the source is known)
        sftp.lstat(src)
        with contextlib.suppress(FileNotFoundError):
            sftp.remove(dest)
        sftp.rename(src, dest)

    def check_folder(self, folder: str) -> None:
        """Refuse archive/ or rejected/ when it is a symlink or a file; a missing one is made when a drop settles."""
        with contextlib.suppress(FileNotFoundError):
            self.ensure_folder(folder, create=False)

    def ensure_folder(self, folder: str, create: bool = True) -> None:
        """Create archive/ or rejected/ if missing; refuse one that is a symlink or a file."""
        check_name(folder, self.where)
        sftp = self.connect()
        try:
            st = sftp.lstat(self._p(folder))
        except FileNotFoundError:
            if not create:
                raise
            sftp.mkdir(self._p(folder))
            st = sftp.lstat(self._p(folder))
        if not stat.S_ISDIR(st.st_mode or 0):
            raise SourceError(not_a_real_folder(self.where, folder, st.st_mode or 0))

    def move(self, name: str, folder: str) -> None:
        """Move a file into archive/ or rejected/ (checked to be a real folder), keeping its raw name."""
        check_name(name, self.where)
        self.ensure_folder(folder)
        self._replace(self._p(name), self._p(folder, name))

    def restore(self, name: str, folder: str) -> None:
        """Move a file back from archive/ or rejected/ into the drop folder (an accepted held delivery)."""
        check_name(name, self.where)
        self.ensure_folder(folder)
        self._replace(self._p(folder, name), self._p(name))
