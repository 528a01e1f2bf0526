"""Protection: the one place where a field's contract policy turns into stored columns.

token   keyed HMAC-SHA256 of the normalized value, hex: the same person joins across every feed
encrypt AES-256-GCM, "kid:base64(nonce|ciphertext)", bound to contract and field: re-identification only
mask    display form (430102********1234, 王*明, 138****5678)
"""

from __future__ import annotations

import base64
import hmac
import os
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from lidm import idnumber
from lidm.contracts.model import Check, Contract, Field, Protection
from lidm.keys import Keyring


@dataclass(frozen=True)
class Protector:
    """Applies a contract's protection policy with the keyring's active keys."""

    contract: Contract
    keyring: Keyring

    def token(self, values: pa.Array) -> pa.Array:
        """Keyed token of normalized text; None stays None."""
        key = self.keyring.token.active_key
        return pa.array(
            [None if v is None else hmac.digest(key, v.encode("utf-8"), "sha256").hex() for v in values.to_pylist()],
            type=pa.string(),
        )

    def encrypt(self, values: pa.Array, field: str) -> pa.Array:
        kid = self.keyring.encrypt.active
        aead = AESGCM(self.keyring.encrypt.active_key)
        aad = f"{self.contract.id}/{field}".encode()
        out = []
        for v in values.to_pylist():
            if v is None:
                out.append(None)
                continue
            nonce = os.urandom(12)
            blob = nonce + aead.encrypt(nonce, str(v).encode("utf-8"), aad)
            out.append(f"{kid}:{base64.b64encode(blob).decode('ascii')}")
        return pa.array(out, type=pa.string())

    def decrypt(self, value: str, field: str) -> str:
        """Inverse of encrypt; the audited re-identification path is the only intended caller."""
        kid, _, b64 = value.partition(":")
        blob = base64.b64decode(b64)
        aead = AESGCM(self.keyring.encrypt.get(kid))
        return aead.decrypt(blob[:12], blob[12:], f"{self.contract.id}/{field}".encode()).decode("utf-8")

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
    # Names and free text: first character, a star, last character (王*明, 李*).
    length = pc.utf8_length(values)
    first = pc.utf8_slice_codeunits(values, 0, 1)
    last = pc.if_else(pc.greater(length, 2), pc.utf8_slice_codeunits(values, -1), pa.scalar(""))
    return pc.binary_join_element_wise(first, pa.scalar("*"), last, "")
