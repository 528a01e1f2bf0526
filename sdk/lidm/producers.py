"""Signed drops: a department signs what it drops, the gateway checks it against the department's public key.

Next to ``roster_20261127.csv`` the department puts ``roster_20261127.csv.manifest.json`` (contract id and
version, file name, size, sha256, rows, created_at, producer key id) and ``roster_20261127.csv.manifest.sig``
(the base64 Ed25519 signature over the manifest's exact bytes), then the completeness marker. It makes them
with ``lidm drop sign`` (SDK only). The gateway holds only **public** keys, in the trusted-producers file
named by LIDM_PRODUCER_KEYS: ``{"<department or feed>": [{"key_id": ..., "public_key": base64}]}``.

The loader verifies signature, trust, contract, size and sha256 before the first row is read
(`verify_drop`, called by the drop source); every failure is a RejectedBatch with a reason a department can act on.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import json
import os
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from lidm.config import Settings, json_setting
from lidm.contracts.model import Contract
from lidm.errors import ConfigError, KeyringError, RejectedBatch

MANIFEST_SUFFIX = ".manifest.json"
SIGNATURE_SUFFIX = ".manifest.sig"
FORMAT = "lidm-drop-manifest/1"
_READ = 1 << 20


@dataclass(frozen=True)
class DropTrust:
    """What the loader needs to check one feed's drops: who may sign them and whether a signature is required."""

    producer: str
    contract_id: str
    required: bool
    keys: dict[str, bytes] = field(default_factory=dict)  # key id -> raw Ed25519 public key

    def __repr__(self) -> str:
        return f"DropTrust(producer={self.producer!r}, required={self.required}, key_ids={sorted(self.keys)!r})"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def load_trusted(settings: Settings) -> dict[str, list[dict[str, str]]]:
    """LIDM_PRODUCER_KEYS as {producer: [{key_id, public_key}]}: inline JSON or the path of a JSON file."""
    try:
        found = json_setting(settings.producer_keys, "LIDM_PRODUCER_KEYS")
    except OSError as exc:
        raise ConfigError(f"LIDM_PRODUCER_KEYS: cannot read {settings.producer_keys} ({type(exc).__name__})") from None
    except ValueError:
        raise ConfigError("LIDM_PRODUCER_KEYS: trusted producer keys are not valid JSON") from None
    if found is None:
        return {}
    data, where = found
    if not isinstance(data, dict) or not all(isinstance(v, list) for v in data.values()):
        raise ConfigError(f'{where}: expected {{"<department>": [{{"key_id": ..., "public_key": ...}}]}}')
    return data


def _required(settings: Settings, names: tuple[str, ...], signed: bool) -> bool:
    wanted = settings.require_signed_drops
    if isinstance(wanted, bool):
        return signed or wanted
    return signed or any(n in wanted for n in names)


def drop_trust(settings: Settings, feed: str, contract: Contract, signed: bool = False) -> DropTrust:
    """Trusted keys of the feed's department (and of the feed itself) and whether its drops must be signed."""
    trusted = load_trusted(settings)
    keys: dict[str, bytes] = {}
    for producer in (contract.department, feed):
        for entry in trusted.get(producer, []):
            try:
                raw = base64.b64decode(entry["public_key"], validate=True)
                Ed25519PublicKey.from_public_bytes(raw)
                keys[str(entry["key_id"])] = raw
            except (KeyError, TypeError, ValueError):
                raise ConfigError(
                    f"LIDM_PRODUCER_KEYS: an entry of {producer} needs key_id and a base64 32-byte public_key"
                ) from None
    return DropTrust(
        producer=contract.department,
        contract_id=contract.id,
        required=_required(settings, (feed, contract.id, contract.department), signed),
        keys=keys,
    )


def verify_drop(store: Any, name: str, trust: DropTrust, where: str) -> dict[str, Any] | None:
    """Check a drop's producer manifest before anything is read into the gateway; the manifest, or None when
    the drop is unsigned and no signature is required. Raises RejectedBatch with the reason otherwise."""
    have = set(store.list())
    manifest_name, sig_name = name + MANIFEST_SUFFIX, name + SIGNATURE_SUFFIX
    if manifest_name not in have and sig_name not in have:
        if not trust.required:
            return None
        raise RejectedBatch(
            "signature_missing",
            f"drops of {trust.contract_id} must be signed by {trust.producer}: put {manifest_name} and "
            f"{sig_name} next to the file (`lidm drop sign`) before the marker",
            file=where,
        )
    if manifest_name not in have or sig_name not in have:
        missing = manifest_name if manifest_name not in have else sig_name
        raise RejectedBatch("signature_missing", f"{missing} is missing; sign the drop again", file=where)
    body = _read_all(store, manifest_name)
    try:
        manifest = json.loads(body.decode("utf-8"))
        key_id = str(manifest["producer_key_id"])
    except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError):
        raise RejectedBatch(
            "signature_invalid", f"{manifest_name} is not a drop manifest; sign the drop again", file=where
        ) from None
    if key_id not in trust.keys:
        raise RejectedBatch(
            "unknown_producer_key",
            f"signed with key {key_id}, which is not a trusted key of {trust.producer}; send the gateway team "
            "the public key (`lidm keys producer-new` prints it) or sign with a registered key",
            file=where,
        )
    try:
        signature = base64.b64decode(_read_all(store, sig_name).strip(), validate=True)
        Ed25519PublicKey.from_public_bytes(trust.keys[key_id]).verify(signature, body)
    except (InvalidSignature, ValueError):
        raise RejectedBatch(
            "signature_invalid",
            f"the signature in {sig_name} does not match {manifest_name} under key {key_id}; "
            "the manifest was changed after signing or the signature belongs to another drop",
            file=where,
        ) from None
    if manifest.get("contract") != trust.contract_id or manifest.get("file") != name:
        raise RejectedBatch(
            "manifest_mismatch",
            f"the signed manifest is for {manifest.get('contract')} / {manifest.get('file')}, not "
            f"{trust.contract_id} / {name}",
            file=where,
        )
    size, digest = _size_and_digest(store, name)
    if size != manifest.get("size") or digest != manifest.get("sha256"):
        what = "shorter or longer than" if size != manifest.get("size") else "different from"
        raise RejectedBatch(
            "digest_mismatch",
            f"the file is {what} what its producer signed (truncated or changed after signing); drop it again",
            file=where,
        )
    return manifest


def _read_all(store: Any, name: str) -> bytes:
    with store.open(name) as fh:
        return fh.read()


def _size_and_digest(store: Any, name: str) -> tuple[int, str]:
    h, size = hashlib.sha256(), 0
    with store.open(name) as fh:
        while block := fh.read(_READ):
            h.update(block)
            size += len(block)
    return size, h.hexdigest()


# --------------------------------------------------------------------------- the department's side


def new_producer_key(producer: str) -> tuple[dict[str, str], dict[str, str]]:
    """A department signing key pair: (private entry for the department, public entry for the gateway)."""
    key = Ed25519PrivateKey.generate()
    key_id = f"{producer}-{datetime.now(UTC):%Y%m%d}-{secrets.token_hex(3)}"
    raw = key.private_bytes_raw()
    public = _b64(key.public_key().public_bytes_raw())
    private = {"producer": producer, "key_id": key_id, "algorithm": "ed25519", "private_key": _b64(raw)}
    return private, {"key_id": key_id, "algorithm": "ed25519", "public_key": public}


def write_producer_key(producer: str, folder: Path) -> tuple[Path, dict[str, str]]:
    """Write the private key file (mode 600) under folder; return its path and the public entry to register."""
    private, public = new_producer_key(producer)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{private['key_id']}.key.json"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(private, fh, indent=2)
    (folder / f"{private['key_id']}.pub.json").write_text(json.dumps({producer: [public]}, indent=2) + "\n", "utf-8")
    return path, public


def load_producer_key(path: Path) -> tuple[str, str, Ed25519PrivateKey]:
    """(producer, key id, private key) from a file written by `lidm keys producer-new`."""
    try:
        data = json.loads(path.read_text("utf-8"))
        raw = base64.b64decode(data["private_key"], validate=True)
        return str(data["producer"]), str(data["key_id"]), Ed25519PrivateKey.from_private_bytes(raw)
    except (OSError, json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise KeyringError(f"{path}: not a producer key file ({type(exc).__name__})") from None


def _count_rows(path: Path) -> int | None:
    """Data records of a CSV (header excluded). Quotes, commas and line ends are ASCII in UTF-8, GBK and
    GB18030 alike, so counting on latin-1 text is encoding-neutral. None for other formats."""
    if path.suffix.lower() != ".csv":
        return None
    with path.open("r", encoding="latin-1", newline="") as fh:
        return max(sum(1 for rec in csv.reader(fh) if rec) - 1, 0)


def drop_manifest(path: Path, contract: str, version: str | None, producer: str, key_id: str) -> dict[str, Any]:
    """The manifest a department signs for one drop file."""
    h, size = hashlib.sha256(), 0
    with path.open("rb") as fh:
        while block := fh.read(_READ):
            h.update(block)
            size += len(block)
    return {
        "format": FORMAT,
        "contract": contract,
        "version": version,
        "file": path.name,
        "size": size,
        "sha256": h.hexdigest(),
        "rows": _count_rows(path),
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "producer": producer,
        "producer_key_id": key_id,
    }


def sign_drop(path: Path, key_file: Path, contract: str, version: str | None = None) -> tuple[Path, Path]:
    """Write FILE.manifest.json and its detached signature FILE.manifest.sig next to a drop file."""
    if not path.is_file():
        raise ConfigError(f"{path}: no such file to sign")
    producer, key_id, key = load_producer_key(key_file)
    body = manifest_text(drop_manifest(path, contract, version, producer, key_id))
    manifest_path = path.with_name(path.name + MANIFEST_SUFFIX)
    sig_path = path.with_name(path.name + SIGNATURE_SUFFIX)
    manifest_path.write_bytes(body)
    sig_path.write_text(_b64(key.sign(body)) + "\n", "ascii")
    return manifest_path, sig_path


def sign_bytes(body: bytes, key_file: Path) -> str:
    """Base64 Ed25519 signature of body with a producer key file (tests and tools that build manifests)."""
    return _b64(load_producer_key(key_file)[2].sign(body))


def manifest_text(manifest: dict[str, Any]) -> bytes:
    """The exact bytes `sign_drop` writes for a manifest."""
    return json.dumps(manifest, indent=2, sort_keys=True).encode()


__all__ = [
    "MANIFEST_SUFFIX",
    "SIGNATURE_SUFFIX",
    "DropTrust",
    "drop_trust",
    "load_trusted",
    "new_producer_key",
    "sign_drop",
    "verify_drop",
    "write_producer_key",
]
