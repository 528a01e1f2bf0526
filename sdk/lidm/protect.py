"""Protection: the one place where a field's contract policy turns into stored columns.

token   keyed HMAC of the normalized value, hex (HMAC-SHA256, or HMAC-SM3 in the sm profile): the same person
        joins across every feed
encrypt AEAD, "kid:alg:base64(nonce|ciphertext|tag)" (alg aes-256-gcm or sm4-gcm), bound to contract and
        field: re-identification only. The prefix names key and algorithm, so a reader never guesses;
        "kid:base64" (written before algorithms were recorded) is AES-256-GCM.
mask    display form (4301**************, 王*, 138****5678): what each hides is declared in
        lidm.contracts.disclosure, which checks that no consumer can rebuild it from its other grants
"""

from __future__ import annotations

import base64
import hashlib
import os
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import hmac as chmac
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from lidm import idnumber
from lidm.contracts.model import Check, Contract, Field, Protection
from lidm.errors import KeyringError
from lidm.keys import Keyring

NONCE, TAG = 12, 16


def _sm4_gcm_encrypt(key: bytes, nonce: bytes, data: bytes, aad: bytes) -> bytes:
    enc = Cipher(algorithms.SM4(key), modes.GCM(nonce)).encryptor()
    enc.authenticate_additional_data(aad)
    return enc.update(data) + enc.finalize() + enc.tag


def _sm4_gcm_decrypt(key: bytes, nonce: bytes, data: bytes, aad: bytes) -> bytes:
    dec = Cipher(algorithms.SM4(key), modes.GCM(nonce, data[-TAG:])).decryptor()
    dec.authenticate_additional_data(aad)
    return dec.update(data[:-TAG]) + dec.finalize()


_SEAL = {
    "aes-256-gcm": (
        lambda k, n, d, a: AESGCM(k).encrypt(n, d, a),
        lambda k, n, d, a: AESGCM(k).decrypt(n, d, a),
    ),
    "sm4-gcm": (_sm4_gcm_encrypt, _sm4_gcm_decrypt),
}


def seal(keyring: Keyring, data: bytes, aad: bytes) -> str:
    """AEAD with the active encryption key: "kid:alg:base64(nonce|ciphertext|tag)"."""
    kid, alg = keyring.encrypt.active, keyring.encrypt.active_algorithm
    nonce = os.urandom(NONCE)
    blob = nonce + _SEAL[alg][0](keyring.encrypt.active_key, nonce, data, aad)
    return f"{kid}:{alg}:{base64.b64encode(blob).decode('ascii')}"


def seal_many(keyring: Keyring, values: list[str | None], aad: bytes) -> list[str | None]:
    """seal() for a column: one cipher object and one nonce draw for the lot (the per-value cost is the loop)."""
    kid, alg = keyring.encrypt.active, keyring.encrypt.active_algorithm
    prefix = f"{kid}:{alg}:"
    nonces = os.urandom(NONCE * len(values))
    b64 = base64.b64encode
    if alg == "aes-256-gcm":
        encrypt = AESGCM(keyring.encrypt.active_key).encrypt
    else:
        key, fn = keyring.encrypt.active_key, _SEAL[alg][0]

        def encrypt(nonce: bytes, data: bytes, aad: bytes) -> bytes:
            return fn(key, nonce, data, aad)

    out: list[str | None] = []
    append = out.append
    for i, v in enumerate(values):
        if v is None:
            append(None)
            continue
        nonce = nonces[i * NONCE : (i + 1) * NONCE]
        append(prefix + b64(nonce + encrypt(nonce, v.encode("utf-8"), aad)).decode("ascii"))
    return out


def unseal(keyring: Keyring, value: str, aad: bytes) -> bytes:
    """Inverse of seal with the key and algorithm the value names; InvalidTag when it was not made for `aad`."""
    parts = value.split(":")
    if len(parts) == 2:  # written before the algorithm was recorded: always AES-256-GCM
        kid, alg, b64 = parts[0], "aes-256-gcm", parts[1]
    elif len(parts) == 3:
        kid, alg, b64 = parts
    else:
        raise KeyringError("ciphertext is not of the form kid:alg:base64")
    if alg not in _SEAL or keyring.encrypt.algorithm(kid) != alg:
        raise KeyringError(f"ciphertext names algorithm {alg!r}, which key {kid} was not made for")
    blob = base64.b64decode(b64)
    return _SEAL[alg][1](keyring.encrypt.get(kid), blob[:NONCE], blob[NONCE:], aad)


def _hmac_function(key: bytes, alg: str, kid: str):  # type: ignore[no-untyped-def]
    if alg == "hmac-sha256":
        # RFC 2104 with the padded key's hash states computed once: half the cost of hmac.digest per value.
        block = key if len(key) <= 64 else hashlib.sha256(key).digest()
        inner = hashlib.sha256(bytes(b ^ 0x36 for b in block.ljust(64, b"\0")))
        outer = hashlib.sha256(bytes(b ^ 0x5C for b in block.ljust(64, b"\0")))

        def sha256(v: str) -> str:
            i = inner.copy()
            i.update(v.encode("utf-8"))
            o = outer.copy()
            o.update(i.digest())
            return o.hexdigest()

        return sha256
    if alg == "hmac-sm3":
        base = chmac.HMAC(key, hashes.SM3())

        def sm3(v: str) -> str:
            h = base.copy()
            h.update(v.encode("utf-8"))
            return h.finalize().hex()

        return sm3
    raise KeyringError(f"token key {kid} has unknown algorithm {alg}")


def token_function(keyring: Keyring):  # type: ignore[no-untyped-def]
    """text -> hex token: the token chain's keys applied in turn (one key until a re-tokenization adds one)."""
    ks = keyring.token
    steps = [_hmac_function(ks.get(kid), ks.algorithm(kid), kid) for kid in ks.token_chain]
    if len(steps) == 1:
        return steps[0]

    def chained(v: str) -> str:
        for step in steps:
            v = step(v)
        return v

    return chained


def next_token_function(keyring: Keyring):  # type: ignore[no-untyped-def]
    """old token -> token under the chain's last key: what a re-tokenization applies to stored tokens."""
    ks = keyring.token
    return _hmac_function(ks.active_key, ks.active_algorithm, ks.active)


@dataclass(frozen=True)
class Protector:
    """Applies a contract's protection policy with the keyring's active keys."""

    contract: Contract
    keyring: Keyring

    def token(self, values: pa.Array) -> pa.Array:
        """Keyed token of normalized text; None stays None."""
        fn = token_function(self.keyring)
        return pa.array([None if v is None else fn(v) for v in values.to_pylist()], type=pa.string())

    def encrypt(self, values: pa.Array, field: str) -> pa.Array:
        aad = f"{self.contract.id}/{field}".encode()
        return pa.array(seal_many(self.keyring, pc.cast(values, pa.string()).to_pylist(), aad), type=pa.string())

    def decrypt(self, value: str, field: str) -> str:
        """Inverse of encrypt. Callers: `lidm.reidentify` (audited per call) and the warning push (audited per push)."""
        return unseal(self.keyring, value, f"{self.contract.id}/{field}".encode()).decode("utf-8")

    def protect(self, table: pa.Table) -> pa.Table:
        """Typed valid rows in, central columns out (in contract order); DROP fields vanish here."""
        cols: dict[str, pa.Array] = {}
        for f, col, kind in self.contract.output_columns():
            values = table[f.name].combine_chunks()
            if kind is Protection.CLEAR:
                cols[col] = values
            elif kind is Protection.TOKEN:
                cols[col] = self.token(pc.cast(values, pa.string()))
            elif kind is Protection.ENCRYPT:
                cols[col] = self.encrypt(pc.cast(values, pa.string()), f.name)
            elif kind is Protection.MASK:
                cols[col] = mask(f, pc.cast(values, pa.string()))
        return pa.table(cols)


def mask(field: Field, values: pa.Array) -> pa.Array:
    """The display form of a field, chosen by what the field is."""
    if Check.ID_NUMBER in field.checks:
        return idnumber.mask(values)
    if Check.PHONE in field.checks:
        return pc.binary_join_element_wise(
            pc.utf8_slice_codeunits(values, 0, 3), pa.scalar("****"), pc.utf8_slice_codeunits(values, -4), ""
        )
    # Names and free text: the first character and one star, whatever the length (王*, 欧*, a lone 李 as *):
    # the given name and the length stay hidden, and a one-character value is not shown whole.
    first = pc.if_else(pc.greater(pc.utf8_length(values), 1), pc.utf8_slice_codeunits(values, 0, 1), pa.scalar(""))
    return pc.binary_join_element_wise(first, pa.scalar("*"), "")
