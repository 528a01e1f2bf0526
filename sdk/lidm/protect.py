"""Protection: the one place where a field's contract policy turns into stored columns.

token   keyed HMAC of the normalized value (HMAC-SHA256, or HMAC-SM3 in the sm profile): the same person joins
        across every feed. Python sees lowercase hex; the database stores the 32 bytes (lidm.central.schema.Token)
encrypt one AEAD per row, not per field: the row's encrypted fields, each with its id, sealed together into the
        binary column ``_sealed`` = format (1 byte: 0x03 aes-256-gcm, 0x04 sm4-gcm) | key fingerprint (4 bytes,
        lidm.keys.fingerprint) | nonce (12) | ciphertext | tag (16), bound (AAD) to the contract and that 5-byte
        head. Re-identification only: ``Protector.decrypt`` opens a row and returns the one field asked for.
        The plaintext is, per field with a value, its 2-byte id (lidm.contracts.model.sealed_field_id) | the
        value's length in UTF-8 bytes as a varint (LEB128) | the value: a null field is absent, an empty one
        present, and a message stays readable when a contract version adds a field (migration 0024). Rows of
        format 0x01/0x02 (migration 0021: ``name:length:value`` per field) still open.
mask    display form (4301**************, 王*, 138****5678): what each hides is declared in
        lidm.contracts.disclosure, which checks that no consumer can rebuild it from its other grants

Quarantined rows and audit seals keep the text form ``seal()`` = "kid:alg:base64(nonce|ciphertext|tag)" (one
message each, off the hot path); ``unseal`` also opens the per-field values stored before migration 0021.
"""

from __future__ import annotations

import base64
import hashlib
import os
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import hmac as chmac
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from lidm import idnumber
from lidm.contracts.model import SEALED, Check, Contract, Field, Protection, sealed_field_id
from lidm.errors import KeyringError
from lidm.keys import Keyring, fingerprint

NONCE, TAG = 12, 16
ROW_FORMAT = {"aes-256-gcm": 0x03, "sm4-gcm": 0x04}  # the first byte of a sealed row: id | varint length | value
ROW_FORMAT_V1 = {"aes-256-gcm": 0x01, "sm4-gcm": 0x02}  # migration 0021's: name:length:value; still opened
_FORMAT_ALG = {v: k for formats in (ROW_FORMAT, ROW_FORMAT_V1) for k, v in formats.items()}
HEAD = 1 + 4  # format byte + key fingerprint: what the AAD binds besides the contract


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


def _encryptor(keyring: Keyring):  # type: ignore[no-untyped-def]
    """(nonce, data, aad) -> ciphertext|tag with the active encryption key: one cipher object for a whole column."""
    alg, key = keyring.encrypt.active_algorithm, keyring.encrypt.active_key
    if alg == "aes-256-gcm":
        return AESGCM(key).encrypt
    fn = _SEAL[alg][0]
    return lambda nonce, data, aad: fn(key, nonce, data, aad)


def _row_aad(contract_id: str, head: bytes) -> bytes:
    return b"lidm-row\x00" + contract_id.encode("utf-8") + b"\x00" + head


def _varints(sizes: np.ndarray, valid: np.ndarray) -> pa.Array:
    """Each size as a LEB128 varint (7 bits a byte, the high bit set on all but the last), null where not `valid`;
    built with numpy, no Python loop per value."""
    sizes = np.where(valid, sizes, 0).astype(np.int64)
    width = 1 + (sizes >= 1 << 7) + (sizes >= 1 << 14) + (sizes >= 1 << 21) + (sizes >= 1 << 28)
    offsets = np.concatenate(([0], np.cumsum(np.where(valid, width, 0)))).astype(np.int32)
    out = np.zeros(int(offsets[-1]), np.uint8)
    for k in range(5):
        at = valid & (width > k)
        more = np.where(width[at] > k + 1, 0x80, 0)
        out[offsets[:-1][at] + k] = ((sizes[at] >> (7 * k)) & 0x7F) | more
    data = pa.Array.from_buffers(pa.binary(), len(sizes), [None, pa.py_buffer(offsets), pa.py_buffer(out)])
    return pc.if_else(pa.array(valid), data, pa.scalar(None, pa.binary()))


def row_plaintext(columns: dict[str, pa.Array]) -> pa.Array:
    """Each row's ``id | varint length | value`` pieces joined, built column-wise; null where all are null."""
    pieces, present = [], None
    for name, values in columns.items():
        text = pc.cast(pc.cast(values, pa.string()), pa.binary())
        valid = np.asarray(pc.is_valid(text), dtype=bool)
        sizes = np.asarray(pc.binary_length(text).fill_null(0), dtype=np.int64)
        head = pa.scalar(sealed_field_id(name), pa.binary())
        pieces.append(pc.binary_join_element_wise(head, _varints(sizes, valid), text, pa.scalar(b"", pa.binary())))
        ok = pc.is_valid(text)
        present = ok if present is None else pc.or_(present, ok)
    empty = pa.scalar(b"", pa.binary())
    joined = pc.binary_join_element_wise(*pieces, empty, null_handling="replace", null_replacement=b"")
    return pc.if_else(present, joined, pa.scalar(None, pa.binary()))


def row_plaintext_v1(columns: dict[str, pa.Array]) -> pa.Array:
    """Migration 0021's plaintext, ``name:length:value`` per field: what 0024's downgrade seals again."""
    pieces, present = [], None
    for name, values in columns.items():
        text = pc.cast(values, pa.string())
        size = pc.cast(pc.binary_length(text), pa.string())
        pieces.append(pc.binary_join_element_wise(pa.scalar(f"{name}:"), size, pa.scalar(":"), text, ""))
        valid = pc.is_valid(text)
        present = valid if present is None else pc.or_(present, valid)
    joined = pc.binary_join_element_wise(*pieces, "", null_handling="replace", null_replacement="")
    return pc.cast(pc.if_else(present, joined, pa.scalar(None, pa.string())), pa.binary())


def seal_rows(keyring: Keyring, contract_id: str, plaintexts: pa.Array, *, v1: bool = False) -> pa.Array:
    """One AEAD per row: head | nonce | ciphertext | tag; the loop body is the encrypt call alone. `v1`: plaintexts
    of row_plaintext_v1, under migration 0021's format byte."""
    kid, alg = keyring.encrypt.active, keyring.encrypt.active_algorithm
    head = bytes([(ROW_FORMAT_V1 if v1 else ROW_FORMAT)[alg]]) + fingerprint(kid)
    aad, encrypt = _row_aad(contract_id, head), _encryptor(keyring)
    values = plaintexts.to_pylist()
    nonces = os.urandom(NONCE * len(values))
    out = [
        None if v is None else head + (n := nonces[i * NONCE : (i + 1) * NONCE]) + encrypt(n, v, aad)
        for i, v in enumerate(values)
    ]
    return pa.array(out, type=pa.binary())


def open_row(keyring: Keyring, contract_id: str, sealed: bytes, field: str) -> str | None:
    """One field of a sealed row (None when the row had no value for it); InvalidTag when the row was not sealed
    for `contract_id` or was changed, KeyringError when its head names no key of this keyring."""
    return open_fields(keyring, contract_id, sealed, [field])[field]


def open_fields(keyring: Keyring, contract_id: str, sealed: bytes, fields: list[str]) -> dict[str, str | None]:
    """Several fields of a sealed row, opened once (a migration's re-sealing); as open_row otherwise."""
    sealed = bytes(sealed)
    if len(sealed) < HEAD + NONCE + TAG or sealed[0] not in _FORMAT_ALG:
        raise KeyringError("sealed row has an unknown format; it was not written by this version of lidm")
    alg, kid = _FORMAT_ALG[sealed[0]], keyring.encrypt.by_fingerprint(sealed[1:HEAD])
    if keyring.encrypt.algorithm(kid) != alg:
        raise KeyringError(f"sealed row names algorithm {alg}, which key {kid} was not made for")
    nonce, body = sealed[HEAD : HEAD + NONCE], sealed[HEAD + NONCE :]
    plain = _SEAL[alg][1](keyring.encrypt.get(kid), nonce, body, _row_aad(contract_id, sealed[:HEAD]))
    pick = _field_v1 if sealed[0] in ROW_FORMAT_V1.values() else _field
    return {f: pick(plain, f) for f in fields}


def _field(plain: bytes, field: str) -> str | None:
    """The value of `field` in a row's plaintext (id | varint length | value), the others skipped undecoded."""
    want, at, end = sealed_field_id(field), 0, len(plain)
    while at < end:
        fid, at = plain[at : at + 2], at + 2
        size = shift = 0
        while True:
            byte = plain[at]
            at += 1
            size |= (byte & 0x7F) << shift
            shift += 7
            if byte < 0x80:
                break
        if fid == want:
            return plain[at : at + size].decode("utf-8")
        at += size
    return None


def _field_v1(plain: bytes, field: str) -> str | None:
    """The value of `field` in a format-0x01/0x02 row's plaintext (``name:length:value``)."""
    want, at = field.encode("utf-8"), 0
    while at < len(plain):
        colon = plain.index(b":", at)
        sep = plain.index(b":", colon + 1)
        start = sep + 1
        end = start + int(plain[colon + 1 : sep])
        if plain[at:colon] == want:
            return plain[start:end].decode("utf-8")
        at = end
    return None


def unseal(keyring: Keyring, value: str, aad: bytes) -> bytes:
    """Inverse of seal with the key and algorithm the value names; InvalidTag when it was not made for `aad`.

    Also what opens the per-field ``<field>_enc`` values of before migration 0021 (aad ``contract/field``)."""
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

    def seal(self, table: pa.Table) -> pa.Array:
        """The rows' encrypted fields sealed together, one message per row (null where every one is null)."""
        fields = self.contract.sealed_fields
        plaintext = row_plaintext({f.name: table[f.name].combine_chunks() for f in fields})
        return seal_rows(self.keyring, self.contract.id, plaintext)

    def decrypt(self, sealed: bytes, field: str) -> str | None:
        """One field of a sealed row. Callers: `lidm.reidentify` (audited per call) and the warning push (audited
        per push)."""
        return open_row(self.keyring, self.contract.id, sealed, field)

    def protect(self, table: pa.Table) -> pa.Table:
        """Typed valid rows in, central columns out (in contract order, then ``_sealed``); DROP fields vanish here."""
        cols: dict[str, pa.Array] = {}
        for f, col, kind in self.contract.output_columns():
            values = table[f.name].combine_chunks()
            if kind is Protection.CLEAR:
                cols[col] = values
            elif kind is Protection.TOKEN:
                cols[col] = self.token(pc.cast(values, pa.string()))
            elif kind is Protection.MASK:
                cols[col] = mask(f, pc.cast(values, pa.string()))
        if self.contract.sealed_fields:
            cols[SEALED] = self.seal(table)
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
