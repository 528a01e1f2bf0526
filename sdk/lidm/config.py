"""Typed configuration from one place: environment variables prefixed LIDM_ (or a .env file)."""

from __future__ import annotations

import json
import os
from datetime import timedelta
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, TypeAdapter, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict


def _default_home() -> Path:
    return Path.cwd() / ".lidm"


SECTIONS = {  # every setting belongs to one; the README's Configuration lists them by section, from here
    "general": "The city and where things are",
    "central": "The central database",
    "security": "Keys, signatures and audit",
    "sources": "Reading the departments' sources",
    "monitor": "The monitoring loop",
}


class Settings(BaseSettings):
    """Gateway settings; every field can be set as LIDM_<NAME>, and belongs to one of SECTIONS."""

    # hide_input_in_errors: a bad value (a connection URL, a keyring) is never echoed in a validation error.
    model_config = SettingsConfigDict(env_prefix="LIDM_", env_file=".env", extra="ignore", hide_input_in_errors=True)

    # --- general: the city and where things are
    home: Path = Field(
        default_factory=_default_home,
        description="Working folder of the embedded default.",
        json_schema_extra={"section": "general"},
    )
    city_prefix: str = Field(
        default="4301",
        description="Division-code prefix of the configured city.",
        json_schema_extra={"section": "general"},
    )
    timezone: str = Field(
        default="Asia/Shanghai",
        description="Zone whose wall-clock time the central database keeps (zone-aware "
        "source timestamps are converted to it).",
        json_schema_extra={"section": "general"},
    )
    contracts_dir: Path | None = Field(
        default=None, description="Folder of contract YAML files.", json_schema_extra={"section": "general"}
    )
    migrations_dir: Path | None = Field(
        default=None,
        description="Folder of the deployment's own migrations: the tables of datasets the SDK does not ship, "
        "written there by `lidm db revision` and applied by `lidm db upgrade` after the SDK's own; migrations/ "
        "next to the contracts folder when unset (none with the contracts installed with the package).",
        json_schema_extra={"section": "general"},
    )
    cache_dir: Path | None = Field(
        default=None,
        description="Where the compiled catalogue is kept between processes (read before the settings are: an "
        "environment variable only).",
        json_schema_extra={"section": "general"},
    )

    # --- central: the central database
    central_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL of the central database; embedded SQLite ($LIDM_HOME/central.db, mode 600) when "
        "unset, made by `lidm db upgrade`, `lidm demo` or a first load, never by a command that only reads.",
        json_schema_extra={"section": "central"},
    )
    admin_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL of the central database as its OWNER (an administrator's role with CREATEROLE): "
        "used only by `lidm db upgrade`, `lidm grants apply` and `lidm audit checkpoint`; LIDM_CENTRAL_URL is then "
        "the loader role's. Unset: LIDM_CENTRAL_URL does everything (the embedded default).",
        json_schema_extra={"section": "central"},
    )
    loader_role: str | None = Field(
        default="lidm_loader",
        pattern=r"^([a-z][a-z0-9_]{0,62})?$",
        description="PostgreSQL role the gateway's service logs in as; with LIDM_ADMIN_URL set, `lidm grants apply` "
        "creates it when missing and gives it exactly the privileges loading, monitoring and housekeeping need "
        "(empty: not managed).",
        json_schema_extra={"section": "central"},
    )
    central_work_mem: str | None = Field(
        default="256MB",
        pattern=r"^([0-9]+(kB|MB|GB))?$",
        description="PostgreSQL work_mem for a batch's final statements (sorting and hashing the staged rows); "
        "empty to keep the server's setting.",
        json_schema_extra={"section": "central"},
    )
    central_idle_timeout_seconds: float = Field(
        default=600.0,
        ge=0,
        description="PostgreSQL ends a gateway session that stays this long inside a transaction without a "
        "statement (a hung loader's batch: rolled back, its locks freed); a live batch is idle only while it waits "
        "on its source or workers, so keep it above the slowest first row of a source query. 0: never.",
        json_schema_extra={"section": "central"},
    )
    feed_lock_wait_seconds: float = Field(
        default=30.0,
        ge=0,
        description="How long a run waits for another run of the same feed to finish before it stops, having "
        "done nothing (one run of a feed at a time).",
        json_schema_extra={"section": "central"},
    )
    quarantine_retention: str = Field(
        default="P1Y",
        description="How long quarantined rows are kept (`lidm purge`), an ISO 8601 duration.",
        json_schema_extra={"section": "central"},
    )

    # --- security: keys, signatures and audit
    audit_key: Path | None = Field(
        default=None,
        description="The administrator's Ed25519 key file that signs audit checkpoints (`lidm audit checkpoint`); "
        "never on the loader's machine.",
        json_schema_extra={"section": "security"},
    )
    audit_public_keys: str | None = Field(
        default=None,
        description='Public keys that verify audit checkpoints: JSON {"<key id>": base64} or a file holding it.',
        json_schema_extra={"section": "security"},
    )
    pgaudit_log: str | None = Field(
        default=None,
        description="The PostgreSQL server log (a path or glob) holding pgaudit's lines: `lidm audit reads` "
        "summarises consumers' reads of their views from it.",
        json_schema_extra={"section": "security"},
    )
    keyring: Path | None = Field(
        default=None, description="Keyring file (outside the repo).", json_schema_extra={"section": "security"}
    )
    keyring_json: SecretStr | None = Field(
        default=None,
        description="Keyring as JSON, e.g. from a secret store (never shown: repr, dumps, errors).",
        json_schema_extra={"section": "security"},
    )
    crypto_profile: Literal["standard", "sm"] | None = Field(
        default=None,
        description="Cryptography profile of the deployment: standard (HMAC-SHA256, AES-256-GCM) or sm "
        "(HMAC-SM3, SM4-GCM); `lidm keys init` uses it and a keyring of another profile is refused.",
        json_schema_extra={"section": "security"},
    )
    producer_keys: str | None = Field(
        default=None,
        description="Trusted producer (department) public keys for signed drops: JSON or a file path, "
        '{"<department or feed>": [{"key_id": ..., "public_key": base64}]}.',
        json_schema_extra={"section": "security"},
    )
    require_signed_drops: bool | list[str] = Field(
        default=False,
        description="Refuse drops without a valid producer signature: true for every drop feed, or a JSON "
        "list of feed names / contract ids / departments.",
        json_schema_extra={"section": "security"},
    )

    # --- sources: reading the departments' sources
    chunk_rows: int = Field(
        default=20_000,
        ge=1,
        description="Rows per columnar chunk read from a database.",
        json_schema_extra={"section": "sources"},
    )
    workers: int = Field(
        default_factory=lambda: min(os.cpu_count() or 1, 4),
        ge=1,
        description="Processes that validate and protect the chunks of a big batch (1: all in the feed's own "
        "process). Past one chunk, tokens and encryption run in this many forked workers.",
        json_schema_extra={"section": "sources"},
    )
    known_hosts: Path | None = Field(
        default=None, description="OpenSSH known_hosts file for SFTP drops.", json_schema_extra={"section": "sources"}
    )
    sftp_timeout_seconds: float = Field(
        default=60.0,
        gt=0,
        description="An SFTP read that gets nothing for this long ends the run (retried).",
        json_schema_extra={"section": "sources"},
    )
    drop_poll_seconds: float = Field(
        default=60.0,
        gt=0,
        description="How often a waiting drop sensor looks for a complete drop (seconds).",
        json_schema_extra={"section": "sources"},
    )
    connections: dict[str, str] = Field(
        default_factory=dict,
        description="Source connections by name, as URLs (sqlite:///, postgresql+psycopg://, odbc://?dsn, "
        "sftp://user@host:port/dir?key=PATH, file:///dir); in Airflow they come from Airflow connections.",
        json_schema_extra={"section": "sources"},
    )

    # --- monitor: the monitoring loop
    channels: dict[str, str] = Field(
        default_factory=dict,
        description="Each department's warning channel by department code, as a URL: file:///dir or "
        "sftp://user@host:port/dir?key=PATH (an outbox/ and an inbox/ folder), or a database URL with "
        "#schema.table naming the department's warning table; unset departments use home/channels/<dept>.",
        json_schema_extra={"section": "monitor"},
    )
    rules_dir: Path | None = Field(
        default=None,
        description="Folder of monitoring rule YAML files; its assistance/ folder declares the happiness list's "
        "sources.",
        json_schema_extra={"section": "monitor"},
    )
    routing_levels: tuple[Literal["city", "county", "street"], ...] = Field(
        default=("city", "county", "street"),
        description='Levels whose offices receive warnings, e.g. ["city", "county"] while street offices are not '
        "connected yet: a warning whose rule names a level left out goes to the office one level up.",
        json_schema_extra={"section": "monitor"},
    )
    workdays_assume_weekdays_through: int | None = Field(
        default=None,
        ge=2000,
        le=2200,
        description="Stopgap while the installed chinesecalendar lacks a year's official holiday notice: count "
        "Monday to Friday as working days in the years after its last one through this year (e.g. 2027) instead "
        "of refusing `lidm monitor run`; each run that does says so in its audit entry. Unset: refused until "
        "chinesecalendar is upgraded.",
        json_schema_extra={"section": "monitor"},
    )
    # bool first: JSON true stays true and is refused by the rule's declared type, instead of becoming 1.0
    rule_params: dict[str, bool | int | float | str] = Field(
        default_factory=dict,
        description="Overrides of rule params as {rule_id.param: value}, "
        'e.g. {"high_medical_cost_assistance.threshold": 30000}; each must lie within the range its rule file '
        "declares (`lidm monitor rules`).",
        json_schema_extra={"section": "monitor"},
    )

    @property
    def effective_central_url(self) -> str:
        if self.central_url:
            return self.central_url
        return f"sqlite:///{(self.home / 'central.db').resolve()}"

    @property
    def effective_admin_url(self) -> str:
        """The owner's URL: LIDM_ADMIN_URL, else the one URL the gateway uses for everything."""
        return self.admin_url or self.effective_central_url

    @property
    def effective_keyring(self) -> Path:
        return self.keyring or self.home / "keyring.json"


def settings_by_section() -> dict[str, list[tuple[str, str]]]:
    """(environment variable, description) of every setting, by section: the one place they are documented."""
    out: dict[str, list[tuple[str, str]]] = {name: [] for name in SECTIONS}
    for name, info in Settings.model_fields.items():
        extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
        out[str(extra["section"])].append((f"LIDM_{name.upper()}", info.description or ""))
    return out


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings; tests build their own Settings instead."""
    return Settings()


def json_setting(raw: str | None, setting: str) -> tuple[object, str] | None:
    """A setting given as inline JSON or as the path of a JSON file: (parsed value, where it came from).

    None when unset; OSError when the file cannot be read, ValueError when the text is not JSON (callers turn
    both into their own error type, naming `where`).
    """
    text = (raw or "").strip()
    if not text:
        return None
    where = setting
    if not text.startswith("{"):
        where = text
        text = Path(text).read_text("utf-8")
    return json.loads(text), where


_DURATION = TypeAdapter(timedelta)


def duration(text: str | None) -> timedelta | None:
    """An ISO 8601 duration (P2D, PT6H) as a timedelta; None when absent or not one."""
    if not text:
        return None
    try:
        return _DURATION.validate_python(text)
    except ValidationError:
        return None
