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
    """Canonical JSON of the manifest and its Ed25519 signature ("kid:ed25519:base64")."""
    body = canonical(data)
    kid, alg = keyring.sign.active, keyring.sign.active_algorithm
    key = Ed25519PrivateKey.from_private_bytes(keyring.sign.active_key)
    return body.decode("utf-8"), f"{kid}:{alg}:{base64.b64encode(key.sign(body)).decode('ascii')}"


def verify(body: str, signature: str, keyring: Keyring) -> bool:
    """True when the signature was made by a key of this keyring (active or rotated out) over exactly this body."""
    from cryptography.exceptions import InvalidSignature

    parts = signature.split(":")
    if len(parts) == 2:  # signed before the algorithm was recorded: Ed25519
        parts.insert(1, "ed25519")
    if len(parts) != 3 or parts[1] != "ed25519" or parts[0] not in keyring.sign.keys:
        return False
    kid, alg, b64 = parts
    if keyring.sign.algorithm(kid) != alg:
        return False
    public = Ed25519PrivateKey.from_private_bytes(keyring.sign.get(kid)).public_key()
    try:
        public.verify(base64.b64decode(b64), body.encode("utf-8"))
    except (InvalidSignature, ValueError):
        return False
    return True
