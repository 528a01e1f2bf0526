"""Protection: the one place where a field's contract policy turns into stored columns.

token   keyed HMAC of the normalized value (HMAC-SHA256, or HMAC-SM3 in the sm profile): the same person joins
        across every feed. Python sees lowercase hex; the database stores the 32 bytes (lidm.central.schema.Token)
encrypt one AEAD per row, not per field: the row's encrypted fields, each with its name, sealed together into the
        binary column ``_sealed`` = format (1 byte: 0x01 aes-256-gcm, 0x02 sm4-gcm) | key fingerprint (4 bytes,
        lidm.keys.fingerprint) | nonce (12) | ciphertext | tag (16), bound (AAD) to the contract and that 5-byte
        head. Re-identification only: ``Protector.decrypt`` opens a row and returns the one field asked for.
        The plaintext is ``name:length:value`` per field with a value (length in UTF-8 bytes; a null field is
        absent, an empty one present), so a message stays readable when a contract version adds a field.
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

import pyarrow as pa
import pyarrow.compute as pc
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import hmac as chmac
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from lidm import idnumber
from lidm.contracts.model import SEALED, Check, Contract, Field, Protection
from lidm.errors import KeyringError
from lidm.keys import Keyring, fingerprint

NONCE, TAG = 12, 16
ROW_FORMAT = {"aes-256-gcm": 0x01, "sm4-gcm": 0x02}  # the first byte of a sealed row
_FORMAT_ALG = {v: k for k, v in ROW_FORMAT.items()}
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


def row_plaintext(columns: dict[str, pa.Array]) -> pa.Array:
    """Each row's ``name:length:value`` pieces joined, built column-wise (no Python loop); null where all are null."""
    pieces, present = [], None
    for name, values in columns.items():
        text = pc.cast(values, pa.string())
        size = pc.cast(pc.binary_length(text), pa.string())
        pieces.append(pc.binary_join_element_wise(pa.scalar(f"{name}:"), size, pa.scalar(":"), text, ""))
        valid = pc.is_valid(text)
        present = valid if present is None else pc.or_(present, valid)
    joined = pc.binary_join_element_wise(*pieces, "", null_handling="replace", null_replacement="")
    return pc.cast(pc.if_else(present, joined, pa.scalar(None, pa.string())), pa.binary())


def seal_rows(keyring: Keyring, contract_id: str, plaintexts: pa.Array) -> pa.Array:
    """One AEAD per row: head | nonce | ciphertext | tag; the loop body is the encrypt call alone."""
    kid, alg = keyring.encrypt.active, keyring.encrypt.active_algorithm
    head = bytes([ROW_FORMAT[alg]]) + fingerprint(kid)
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
    sealed = bytes(sealed)
    if len(sealed) < HEAD + NONCE + TAG or sealed[0] not in _FORMAT_ALG:
        raise KeyringError("sealed row has an unknown format; it was not written by this version of lidm")
    alg, kid = _FORMAT_ALG[sealed[0]], keyring.encrypt.by_fingerprint(sealed[1:HEAD])
    if keyring.encrypt.algorithm(kid) != alg:
        raise KeyringError(f"sealed row names algorithm {alg}, which key {kid} was not made for")
    nonce, body = sealed[HEAD : HEAD + NONCE], sealed[HEAD + NONCE :]
    plain = _SEAL[alg][1](keyring.encrypt.get(kid), nonce, body, _row_aad(contract_id, sealed[:HEAD]))
    return _field(plain, field)


def _field(plain: bytes, field: str) -> str | None:
    """The value of `field` in a row's plaintext, the others skipped undecoded."""
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
