"""`lidm keys` (the keyring, the audit and producer keys) and `lidm drop` (a department signs its drop)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from lidm.cli.common import console, current_settings, fail
from lidm.errors import LidmError

keys_app = typer.Typer(help="Keyring management.", no_args_is_help=True)
drop_app = typer.Typer(help="Department side of a file drop: sign a drop file.", no_args_is_help=True)


@keys_app.command("init")
def keys_init(
    path: Annotated[Path | None, typer.Option(help="Where to write the keyring (default: LIDM_KEYRING).")] = None,
    force: Annotated[bool, typer.Option(help="Replace an existing keyring (data protected by it is lost).")] = False,
    profile: Annotated[
        str | None, typer.Option(help="standard (HMAC-SHA256, AES-256-GCM) or sm (HMAC-SM3, SM4-GCM).")
    ] = None,
) -> None:
    """Make a new keyring (token, encryption and signing keys) readable by its owner only."""
    from lidm.keys import generate_keyring, write_keyring

    settings = current_settings()
    target = path or settings.effective_keyring
    try:
        keyring = generate_keyring(profile or settings.crypto_profile or "standard")
        write_keyring(keyring, target, overwrite=force)
    except LidmError as exc:
        fail(exc)
    console.print(f"keyring written to {target} (mode 600): {keyring!r}")


@keys_app.command("rotate")
def keys_rotate(
    purpose: Annotated[str, typer.Option(help="encrypt or sign (the token key is never rotated in place).")],
    path: Annotated[Path | None, typer.Option(help="Keyring file to rotate (default: LIDM_KEYRING).")] = None,
) -> None:
    """Add a new active key for new data; older keys stay, so old ciphertexts and signatures still open."""
    from lidm.keys import Keyring, rotate, write_keyring

    target = path or current_settings().effective_keyring
    try:
        if path is None and current_settings().keyring_json:
            raise LidmError("the keyring comes from LIDM_KEYRING_JSON; rotate a copy with --path, store it back")
        if not target.exists():
            raise LidmError(f"no keyring at {target}; run `lidm keys init`")
        import json

        keyring = rotate(Keyring.from_dict(json.loads(target.read_text("utf-8")), str(target)), purpose)
        write_keyring(keyring, target, overwrite=True)
    except LidmError as exc:
        fail(exc)
    console.print(f"{purpose} key rotated in {target}: new data uses {keyring.purpose(purpose).active}; {keyring!r}")


@keys_app.command("retokenize")
def keys_retokenize(
    out: Annotated[
        Path | None, typer.Option(help="Where the new keyring goes (default: over LIDM_KEYRING, after the commit).")
    ] = None,
    yes: Annotated[bool, typer.Option("--yes", help="Do it: every stored token is rewritten.")] = False,
) -> None:
    """Move every stored token to a new token key, in one transaction; loads wait, then use the new keyring."""
    from lidm.retokenize import retokenize

    if not yes:
        fail(LidmError("re-tokenization rewrites every token in the central database; run again with --yes"))
    try:
        done = retokenize(current_settings(), out=out)
    except LidmError as exc:
        fail(exc)
    console.print(
        f"token epoch {done.epoch} (chain {', '.join(done.chain)}): {sum(done.rows.values()):,} tokens rewritten "
        f"in {len(done.rows)} columns; keyring written to {done.keyring}"
    )


@keys_app.command("audit-init")
def keys_audit_init(
    path: Annotated[Path, typer.Option(help="Where to write the administrator's checkpoint key (never the loader's).")],
) -> None:
    """The administrator's Ed25519 key that signs audit checkpoints; kept apart from the keyring the loader holds."""
    import json

    from lidm.keys import generate_audit_key, write_audit_key

    key = generate_audit_key()
    try:
        write_audit_key(key, path)
    except (LidmError, OSError) as exc:
        fail(LidmError(f"cannot write the audit checkpoint key: {exc}"))
    console.print(f"audit checkpoint key written to {path} (mode 600): set LIDM_AUDIT_KEY={path} for the administrator")
    console.print("set this as LIDM_AUDIT_PUBLIC_KEYS wherever the audit log is verified:")
    console.print_json(json.dumps({key.key_id: key.public_key}))


@keys_app.command("producer-new")
def keys_producer_new(
    producer: Annotated[str, typer.Option(help="Department (or feed) the key signs for, e.g. civil_affairs.")],
    out: Annotated[Path, typer.Option(help="Folder for the private key file (keep it at the department).")] = Path(),
) -> None:
    """A department's drop-signing key pair: the private key file stays there, the public entry goes to the gateway."""
    import json

    from lidm.producers import write_producer_key

    try:
        path, public = write_producer_key(producer, out)
    except (LidmError, OSError) as exc:
        fail(LidmError(f"cannot write the producer key: {exc}"))
    console.print(f"private key written to {path} (mode 600); sign drops with `lidm drop sign FILE --key {path}`")
    console.print("add this to the gateway's LIDM_PRODUCER_KEYS (trusted producers):")
    console.print_json(json.dumps({producer: [public]}))


@drop_app.command("sign")
def drop_sign(
    file: Annotated[Path, typer.Argument(help="The drop file, e.g. roster_20261127.csv.")],
    key: Annotated[Path, typer.Option(help="Private key file from `lidm keys producer-new`.")],
    contract: Annotated[str, typer.Option(help="Contract id, e.g. civil_affairs.low_income_roster.")],
    version: Annotated[str | None, typer.Option(help="Contract version (default: from the catalogue).")] = None,
) -> None:
    """Write FILE.manifest.json and its Ed25519 signature FILE.manifest.sig; write the .ok marker after this."""
    from lidm.producers import sign_drop

    if version is None:
        try:
            from lidm.contracts import load_catalog

            version = load_catalog()[contract].version
        except (LidmError, KeyError):
            version = None
    try:
        manifest_path, sig_path = sign_drop(file, key, contract, version)
    except LidmError as exc:
        fail(exc)
    console.print(f"signed: {manifest_path.name} and {sig_path.name}; now write the completeness marker")
