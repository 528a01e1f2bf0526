"""The keyring: versioned keys with key ids, loaded from a file or JSON named in configuration.

Never from the repo, never printed: repr() of a Keyring shows key ids only.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from lidm.config import Settings
from lidm.errors import KeyringError


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str, what: str) -> bytes:
    try:
        raw = base64.b64decode(text, validate=True)
    except (ValueError, TypeError):
        raise KeyringError(f"keyring: {what} is not valid base64") from None
    if len(raw) != 32:
        raise KeyringError(f"keyring: {what} must be 32 bytes, found {len(raw)}")
    return raw


@dataclass(frozen=True, repr=False)
class KeySet:
    """Keys of one purpose: the active one for new data, older ones still usable for reading."""

    active: str
    keys: dict[str, bytes] = field(default_factory=dict)

    def __repr__(self) -> str:
        return f"KeySet(active={self.active!r}, ids={sorted(self.keys)!r})"

    @property
    def active_key(self) -> bytes:
        return self.keys[self.active]

    def get(self, kid: str) -> bytes:
        try:
            return self.keys[kid]
        except KeyError:
            raise KeyringError(f"keyring has no key with id {kid}") from None


@dataclass(frozen=True, repr=False)
class Keyring:
    token: KeySet
    encrypt: KeySet
    sign: KeySet
    profile: str = "standard"

    def __repr__(self) -> str:
        return f"Keyring(profile={self.profile!r}, token={self.token!r}, encrypt={self.encrypt!r})"

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "keyring") -> Keyring:
        try:
            sets = {}
            for purpose in ("token", "encrypt", "sign"):
                raw = data[purpose]
                keys = {kid: _unb64(secret, f"{purpose} key {kid}") for kid, secret in raw["keys"].items()}
                if raw["active"] not in keys:
                    raise KeyringError(f"{source}: active {purpose} key {raw['active']} is not in its keys")
                sets[purpose] = KeySet(active=raw["active"], keys=keys)
        except (KeyError, TypeError, AttributeError) as exc:
            raise KeyringError(
                f"{source}: missing or malformed entry {exc}; run `lidm keys init` to make one"
            ) from None
        return cls(profile=data.get("profile", "standard"), **sets)

    def to_dict(self) -> dict[str, Any]:
        def dump(ks: KeySet) -> dict[str, Any]:
            return {"active": ks.active, "keys": {k: _b64(v) for k, v in ks.keys.items()}}

        return {
            "version": 1,
            "profile": self.profile,
            "token": dump(self.token),
            "encrypt": dump(self.encrypt),
            "sign": dump(self.sign),
        }


def generate_keyring(profile: str = "standard") -> Keyring:
    """A fresh keyring with one key per purpose, ids stamped with today's date."""
    stamp = datetime.now(UTC).strftime("%Y%m%d")
    return Keyring(
        profile=profile,
        token=KeySet(active=f"tok-{stamp}", keys={f"tok-{stamp}": secrets.token_bytes(32)}),
        encrypt=KeySet(active=f"enc-{stamp}", keys={f"enc-{stamp}": secrets.token_bytes(32)}),
        sign=KeySet(active=f"sig-{stamp}", keys={f"sig-{stamp}": secrets.token_bytes(32)}),
    )


def write_keyring(keyring: Keyring, path: Path, *, overwrite: bool = False) -> None:
    """Write a keyring readable by its owner only; refuse to replace one unless told to."""
    if path.exists() and not overwrite:
        raise KeyringError(f"{path} exists; refusing to overwrite keys that protect loaded data")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(keyring.to_dict(), fh, indent=2)


def load_keyring(settings: Settings) -> Keyring:
    """The keyring named in configuration: LIDM_KEYRING_JSON, else the LIDM_KEYRING file."""
    if settings.keyring_json:
        try:
            return Keyring.from_dict(json.loads(settings.keyring_json), "LIDM_KEYRING_JSON")
        except json.JSONDecodeError:
            raise KeyringError("LIDM_KEYRING_JSON is not valid JSON") from None
    path = settings.effective_keyring
    if not path.exists():
        raise KeyringError(f"no keyring at {path}; run `lidm keys init` or set LIDM_KEYRING")
    try:
        data = json.loads(path.read_text("utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise KeyringError(f"{path}: cannot read keyring ({type(exc).__name__})") from None
    return Keyring.from_dict(data, str(path))
