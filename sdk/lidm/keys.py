"""The keyring: versioned keys with key ids, loaded from a file or JSON named in configuration.

Never from the repo, never printed: repr() of a Keyring shows key ids only.

Each key records its algorithm, so data protected under an old key (or an older profile) is read with the
algorithm it was made with. The keyring's profile decides the algorithm of new keys:
``standard`` = HMAC-SHA256 tokens, AES-256-GCM; ``sm`` (commercial cryptography) = HMAC-SM3 tokens,
SM4-GCM. Signing is Ed25519 in both (the installed ``cryptography`` has no SM2).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
import stat
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from lidm.config import Settings, json_setting
from lidm.errors import KeyringError, LidmError

PURPOSES = ("token", "encrypt", "sign")
PROFILES: dict[str, dict[str, str]] = {
    "standard": {"token": "hmac-sha256", "encrypt": "aes-256-gcm", "sign": "ed25519"},
    "sm": {"token": "hmac-sm3", "encrypt": "sm4-gcm", "sign": "ed25519"},
}
KEY_BYTES = {"hmac-sha256": 32, "hmac-sm3": 32, "aes-256-gcm": 32, "sm4-gcm": 16, "ed25519": 32}
_PREFIX = {"token": "tok", "encrypt": "enc", "sign": "sig"}
RETOKENIZE_HINT = (
    "the token key is never rotated in place: tokens are the join key across every feed; `lidm keys retokenize` "
    "adds a key to the token chain and rewrites every stored token in one transaction"
)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str, what: str, size: int) -> bytes:
    try:
        raw = base64.b64decode(text, validate=True)
    except (ValueError, TypeError):
        raise KeyringError(f"keyring: {what} is not valid base64") from None
    if len(raw) != size:
        raise KeyringError(f"keyring: {what} must be {size} bytes, found {len(raw)}")
    return raw


def fingerprint(kid: str) -> bytes:
    """The 4 bytes naming an encryption key inside a sealed row: the first bytes of SHA-256 of its id."""
    return hashlib.sha256(kid.encode("utf-8")).digest()[:4]


def check_profile(profile: str) -> str:
    """The profile name if known, else a KeyringError naming the choices."""
    if profile not in PROFILES:
        raise KeyringError(f"unknown crypto profile {profile!r}: use one of {', '.join(PROFILES)}")
    return profile


@dataclass(frozen=True, repr=False)
class KeySet:
    """Keys of one purpose: the active one for new data, older ones still usable for reading."""

    active: str
    keys: dict[str, bytes] = field(default_factory=dict)
    algorithms: dict[str, str] = field(default_factory=dict)
    # Tokens only: the keys applied in turn, token = HMAC(k_n, … HMAC(k_1, value)). A re-tokenization appends
    # one, so every stored token can be rewritten from the token alone (token-only fields keep no raw value).
    chain: tuple[str, ...] = ()

    def __repr__(self) -> str:
        return f"KeySet(active={self.active!r}, ids={sorted(self.keys)!r})"

    @property
    def active_key(self) -> bytes:
        return self.keys[self.active]

    def by_fingerprint(self, fp: bytes) -> str:
        """The id of the key a sealed row names by its fingerprint (Keyring.from_dict refuses two alike)."""
        for kid in self.keys:
            if fingerprint(kid) == fp:
                return kid
        raise KeyringError(f"keyring has no encryption key with fingerprint {fp.hex()}")

    @property
    def token_chain(self) -> tuple[str, ...]:
        return self.chain or (self.active,)

    @property
    def epoch(self) -> int:
        """How many re-tokenizations this key set has seen, plus one; the central database records its own."""
        return len(self.token_chain)

    @property
    def root_key(self) -> bytes:
        """The first token key: keyed row digests use it, so they survive re-tokenization unchanged."""
        return self.keys[self.token_chain[0]]

    @property
    def active_algorithm(self) -> str:
        return self.algorithm(self.active)

    def algorithm(self, kid: str) -> str:
        """The algorithm key `kid` was made for."""
        self.get(kid)
        try:
            return self.algorithms[kid]
        except KeyError:
            raise KeyringError(
                f"keyring key {kid} has no recorded algorithm; load keyrings with load_keyring"
            ) from None

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

    def purpose(self, name: str) -> KeySet:
        if name not in PURPOSES:
            raise KeyringError(f"unknown key purpose {name!r}: use one of {', '.join(PURPOSES)}")
        return getattr(self, name)

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "keyring") -> Keyring:
        try:
            profile = check_profile(data.get("profile", "standard"))
            sets = {}
            for purpose in PURPOSES:
                raw = data[purpose]
                # Version 1 keyrings recorded no algorithms: everything then was the standard profile.
                algs = {kid: raw.get("algorithms", {}).get(kid, PROFILES["standard"][purpose]) for kid in raw["keys"]}
                keys = {}
                for kid, secret in raw["keys"].items():
                    if ":" in kid or not kid:
                        raise KeyringError(f"{source}: {purpose} key id {kid!r} must be non-empty without ':'")
                    if algs[kid] not in KEY_BYTES:
                        raise KeyringError(f"{source}: {purpose} key {kid} has unknown algorithm {algs[kid]!r}")
                    keys[kid] = _unb64(secret, f"{purpose} key {kid}", KEY_BYTES[algs[kid]])
                if raw["active"] not in keys:
                    raise KeyringError(f"{source}: active {purpose} key {raw['active']} is not in its keys")
                if algs[raw["active"]] != PROFILES[profile][purpose]:
                    raise KeyringError(
                        f"{source}: active {purpose} key {raw['active']} is {algs[raw['active']]}, "
                        f"but the keyring's profile {profile} uses {PROFILES[profile][purpose]}"
                    )
                chain = tuple(raw.get("chain") or ())
                if chain and (chain[-1] != raw["active"] or any(k not in keys for k in chain)):
                    raise KeyringError(f"{source}: {purpose} chain must list known keys and end with the active one")
                if purpose == "encrypt":
                    _refuse_fingerprint_clash(keys, source)
                sets[purpose] = KeySet(active=raw["active"], keys=keys, algorithms=algs, chain=chain)
        except (KeyError, TypeError, AttributeError) as exc:
            raise KeyringError(
                f"{source}: missing or malformed entry {exc}; run `lidm keys init` to make one"
            ) from None
        return cls(profile=profile, **sets)

    def to_dict(self) -> dict[str, Any]:
        def dump(ks: KeySet) -> dict[str, Any]:
            out = {
                "active": ks.active,
                "keys": {k: _b64(v) for k, v in ks.keys.items()},
                "algorithms": {k: ks.algorithm(k) for k in ks.keys},
            }
            return out | ({"chain": list(ks.chain)} if len(ks.chain) > 1 else {})

        return {
            "version": 2,
            "profile": self.profile,
            "token": dump(self.token),
            "encrypt": dump(self.encrypt),
            "sign": dump(self.sign),
        }


def _refuse_fingerprint_clash(keys: dict[str, bytes], source: str) -> None:
    """A sealed row names its key by a 4-byte fingerprint of the id: two keys alike would be ambiguous."""
    seen: dict[bytes, str] = {}
    for kid in keys:
        other = seen.setdefault(fingerprint(kid), kid)
        if other != kid:
            raise KeyringError(
                f"{source}: encryption keys {other} and {kid} have the same fingerprint (first 4 bytes of the SHA-256 "
                "of the key id), so a sealed row could not say which one it needs; rename the newer key's id"
            )


def _new_key(purpose: str, profile: str, taken: set[str]) -> tuple[str, bytes, str]:
    stamp = datetime.now(UTC).strftime("%Y%m%d")
    kid, n = f"{_PREFIX[purpose]}-{stamp}", 1
    clash = {fingerprint(k) for k in taken} if purpose == "encrypt" else set()
    while kid in taken or fingerprint(kid) in clash:
        n += 1
        kid = f"{_PREFIX[purpose]}-{stamp}-{n}"
    alg = PROFILES[profile][purpose]
    return kid, secrets.token_bytes(KEY_BYTES[alg]), alg


def generate_keyring(profile: str = "standard") -> Keyring:
    """A fresh keyring with one key per purpose, ids stamped with today's date."""
    check_profile(profile)
    sets = {}
    for purpose in PURPOSES:
        kid, key, alg = _new_key(purpose, profile, set())
        sets[purpose] = KeySet(active=kid, keys={kid: key}, algorithms={kid: alg})
    return Keyring(profile=profile, **sets)


def rotate(keyring: Keyring, purpose: str) -> Keyring:
    """A new active key for encrypt or sign; older keys stay so old ciphertexts and signatures still open."""
    if purpose == "token":
        raise KeyringError(f"refusing to rotate the token key: {RETOKENIZE_HINT}")
    ks = keyring.purpose(purpose)
    kid, key, alg = _new_key(purpose, keyring.profile, set(ks.keys))
    new = KeySet(active=kid, keys={**ks.keys, kid: key}, algorithms={**ks.algorithms, kid: alg})
    return replace(keyring, **{purpose: new})


def extend_token_chain(keyring: Keyring) -> Keyring:
    """A new token key appended to the chain (lidm.retokenize rewrites the stored tokens to match)."""
    ks = keyring.token
    kid, key, alg = _new_key("token", keyring.profile, set(ks.keys))
    new = KeySet(
        active=kid, keys={**ks.keys, kid: key}, algorithms={**ks.algorithms, kid: alg}, chain=(*ks.token_chain, kid)
    )
    return replace(keyring, token=new)


def write_keyring(keyring: Keyring, path: Path, *, overwrite: bool = False) -> None:
    """Write a keyring readable by its owner only; refuse to replace one unless told to.

    The new content goes to a private temporary file renamed into place, so a crash never leaves half a keyring.
    """
    if path.exists() and not overwrite:
        raise KeyringError(f"{path} exists; refusing to overwrite keys that protect loaded data")
    path.parent.mkdir(parents=True, exist_ok=True)
    part = path.with_name(f".{path.name}.part")
    fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(keyring.to_dict(), fh, indent=2)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(part, path)


def load_keyring(settings: Settings) -> Keyring:
    """The keyring named in configuration: LIDM_KEYRING_JSON, else the LIDM_KEYRING file.

    When LIDM_CRYPTO_PROFILE is set, a keyring of another profile is refused rather than silently used.
    """
    if settings.keyring_json:
        try:
            ring = Keyring.from_dict(json.loads(settings.keyring_json.get_secret_value()), "LIDM_KEYRING_JSON")
        except json.JSONDecodeError:
            raise KeyringError("LIDM_KEYRING_JSON is not valid JSON") from None
        return _check_configured_profile(ring, settings, "LIDM_KEYRING_JSON")
    path = settings.effective_keyring
    if not path.exists():
        raise KeyringError(f"no keyring at {path}; run `lidm keys init` or set LIDM_KEYRING")
    _refuse_shared(path)
    try:
        data = json.loads(path.read_text("utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise KeyringError(f"{path}: cannot read keyring ({type(exc).__name__})") from None
    return _check_configured_profile(Keyring.from_dict(data, str(path)), settings, str(path))


def load_keyring_or_none(settings: Settings) -> Keyring | None:
    """The keyring when one is configured and opens; None otherwise (audit entries are then chained, unsealed)."""
    try:
        return load_keyring(settings)
    except LidmError:
        return None


def _refuse_shared(path: Path) -> None:
    """Like ssh with a private key: a keyring other users can read or write is refused, not used."""
    if os.name != "posix":
        return
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise KeyringError(
            f"{path}: mode {mode:04o} lets other users read or change the keys; refused. Make it readable by the "
            f"user that runs lidm only: chown that user and `chmod 600 {path}` (in the compose stack, the host's "
            "KEYRING_FILE is what the worker reads, as uid 50000)"
        )


def _check_configured_profile(ring: Keyring, settings: Settings, source: str) -> Keyring:
    wanted = settings.crypto_profile
    if wanted and wanted != ring.profile:
        raise KeyringError(
            f"{source} is a {ring.profile} keyring but LIDM_CRYPTO_PROFILE={wanted}; make a keyring of that "
            f"profile (`lidm keys init --profile {wanted}`) for a new deployment: switching the profile of "
            f"loaded data needs re-tokenization ({RETOKENIZE_HINT})"
        )
    return ring


# --------------------------------------------------------------------------- the audit checkpoint key
# The administrator's own Ed25519 key: it signs checkpoints of the audit chain's head (lidm.central.audit.checkpoint).
# It is deliberately not part of the keyring: the loader holds the keyring, and a key the loader holds cannot
# vouch against the loader. Verifiers need only its public half (LIDM_AUDIT_PUBLIC_KEYS).


@dataclass(frozen=True, repr=False)
class AuditKey:
    """The administrator's checkpoint signing key: an id and an Ed25519 seed (never printed)."""

    key_id: str
    seed: bytes

    def __repr__(self) -> str:
        return f"AuditKey(key_id={self.key_id!r})"

    @property
    def public_key(self) -> str:
        """The base64 public key, for LIDM_AUDIT_PUBLIC_KEYS."""
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
        from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

        public = Ed25519PrivateKey.from_private_bytes(self.seed).public_key()
        return _b64(public.public_bytes(Encoding.Raw, PublicFormat.Raw))


def generate_audit_key() -> AuditKey:
    """A fresh checkpoint key, its id stamped with today's date."""
    return AuditKey(f"audit-{datetime.now(UTC).strftime('%Y%m%d')}-{secrets.token_hex(2)}", secrets.token_bytes(32))


def write_audit_key(key: AuditKey, path: Path) -> None:
    """Write the checkpoint key readable by its owner only; never replace one."""
    if path.exists():
        raise KeyringError(f"{path} exists; refusing to overwrite the audit checkpoint key")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump({"key_id": key.key_id, "algorithm": "ed25519", "private_key": _b64(key.seed)}, fh, indent=2)


def load_audit_key(settings: Settings) -> AuditKey:
    """The administrator's checkpoint key named by LIDM_AUDIT_KEY."""
    path = settings.audit_key
    if path is None or not path.exists():
        raise KeyringError(
            f"no audit checkpoint key{f' at {path}' if path else ''}: set LIDM_AUDIT_KEY to the administrator's key "
            "file (`lidm keys audit-init` makes one)"
        )
    _refuse_shared(path)
    try:
        data = json.loads(path.read_text("utf-8"))
        kid = str(data["key_id"])
        return AuditKey(kid, _unb64(data["private_key"], f"audit key {kid}", 32))
    except (OSError, json.JSONDecodeError, KeyError, TypeError) as exc:
        raise KeyringError(f"{path}: cannot read the audit checkpoint key ({type(exc).__name__})") from None


def load_audit_public_keys(settings: Settings) -> dict[str, bytes]:
    """Checkpoint verification keys by id from LIDM_AUDIT_PUBLIC_KEYS (JSON or a file); empty when unset."""
    try:
        found = json_setting(settings.audit_public_keys, "LIDM_AUDIT_PUBLIC_KEYS")
    except OSError as exc:
        raise KeyringError(
            f"LIDM_AUDIT_PUBLIC_KEYS: cannot read {settings.audit_public_keys} ({type(exc).__name__})"
        ) from None
    except ValueError:
        raise KeyringError("LIDM_AUDIT_PUBLIC_KEYS is not valid JSON") from None
    if found is None:
        return {}
    data, where = found
    if not isinstance(data, dict):
        raise KeyringError(f"{where}: expected a JSON object of key ids")
    return {str(kid): _unb64(b64, f"audit public key {kid}", 32) for kid, b64 in data.items()}
