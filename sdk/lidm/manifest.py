"""Batch manifests: what was loaded, from what, under which keys and policy, signed by the gateway."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from lidm.contracts.model import Contract
from lidm.keys import Keyring


def policy_digest(contract: Contract) -> str:
    """Digest of the contract's protection policy, so a receipt proves which policy applied."""
    policy = {f.name: [p.value for p in f.protection] for f in contract.fields}
    return hashlib.sha256(json.dumps(policy, sort_keys=True).encode()).hexdigest()


def canonical(data: dict[str, Any]) -> bytes:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str).encode("utf-8")


def sign(data: dict[str, Any], keyring: Keyring) -> tuple[str, str]:
    """Canonical JSON of the manifest and its Ed25519 signature (base64, prefixed by key id)."""
    body = canonical(data)
    key = Ed25519PrivateKey.from_private_bytes(keyring.sign.active_key)
    return body.decode("utf-8"), f"{keyring.sign.active}:{base64.b64encode(key.sign(body)).decode('ascii')}"


def verify(body: str, signature: str, keyring: Keyring) -> bool:
    """True when the signature was made by a key of this keyring over exactly this body."""
    from cryptography.exceptions import InvalidSignature

    kid, _, b64 = signature.partition(":")
    public = Ed25519PrivateKey.from_private_bytes(keyring.sign.get(kid)).public_key()
    try:
        public.verify(base64.b64decode(b64), body.encode("utf-8"))
    except InvalidSignature:
        return False
    return True
