"""SFTP over paramiko with strict host-key checking: unknown or changed keys are refused, never added."""

from __future__ import annotations

import contextlib
import io
import posixpath
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import parse_qs, unquote, urlsplit

import paramiko

from lidm.errors import ConfigError, HostKeyError, SourceError

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


class SftpStore:
    """A drop folder on an SFTP server."""

    def __init__(self, target: SftpTarget, timeout: float = READ_TIMEOUT_SECONDS) -> None:
        self.target = target
        self.timeout = timeout
        self.root = target.path
        self._client: paramiko.SSHClient | None = None
        self._sftp: paramiko.SFTPClient | None = None

    @property
    def where(self) -> str:
        return f"sftp://{self.target.host}:{self.target.port}{self.root}"

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

    def _p(self, *parts: str) -> str:
        return posixpath.join(self.root, *parts)

    def list(self, folder: str = "") -> list[str]:
        sftp = self.connect()
        try:
            return sorted(a.filename for a in sftp.listdir_attr(self._p(folder)) if stat.S_ISREG(a.st_mode or 0))
        except FileNotFoundError:
            raise SourceError(f"{self.where}/{folder}: drop folder does not exist") from None

    def open(self, name: str) -> BinaryIO:
        fh = self.connect().open(self._p(name), "rb")
        fh.prefetch()
        return io.BufferedReader(_GuardedFile(fh, f"{self.where}/{name}"), 1 << 20)  # type: ignore[return-value]

    def read_text(self, name: str) -> str:
        with self.connect().open(self._p(name), "rb") as fh:
            return fh.read().decode("utf-8", errors="replace")

    def write_text(self, name: str, text: str) -> None:
        self.makedirs(posixpath.dirname(name))
        with self.connect().open(self._p(name), "wb") as fh:
            fh.write(text.encode("utf-8"))

    def put(self, name: str, data: bytes) -> None:
        """Upload under a hidden .part name, then rename: a reader never sees half a file."""
        sftp = self.connect()
        part = self._p(f".{name}.part")
        with sftp.open(part, "wb") as fh:
            fh.write(data)
        with contextlib.suppress(FileNotFoundError):
            sftp.remove(self._p(name))
        sftp.rename(part, self._p(name))

    def makedirs(self, folder: str) -> None:
        sftp = self.connect()
        try:
            sftp.stat(self._p(folder))
        except FileNotFoundError:
            sftp.mkdir(self._p(folder))

    def move(self, name: str, folder: str) -> None:
        self.makedirs(folder)
        sftp = self.connect()
        dest = self._p(folder, posixpath.basename(name))
        with contextlib.suppress(FileNotFoundError):
            sftp.remove(dest)
        sftp.rename(self._p(name), dest)
