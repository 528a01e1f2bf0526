"""Error types. Messages name the place (file, row, field) and what to do, never a personal value.

Each class says whether running the same thing again can help (``retryable``): a source or the central database
that was away, a feed another run held, yes; a delivery's data, a configuration, a contract, a key, no — those
need a person, and a scheduler retrying them only delays the alert. The Airflow tasks read it (:func:`retryable`).
"""

from __future__ import annotations

from functools import partial
from typing import ClassVar


class LidmError(Exception):
    """Base of every error the gateway raises on purpose."""

    retryable: ClassVar[bool] = True  # unless a subclass knows better: the run stopped, nothing was half-written


def retryable(exc: BaseException) -> bool:
    """Whether a retry of the failed run can help: what the error's class says; anything unforeseen, yes."""
    return getattr(type(exc), "retryable", True)


class ConfigError(LidmError):
    """The configuration is missing or inconsistent."""

    retryable = False


class ContractError(LidmError):
    """A contract file cannot be loaded or is not valid."""

    retryable = False


class KeyringError(LidmError):
    """The keyring is missing, unreadable or lacks a key."""

    retryable = False


class SourceError(LidmError):
    """A department source cannot be reached or read (transient: worth a retry)."""


class ChannelError(SourceError):
    """A department's channel (its folder or its own database) cannot be reached, read or written."""


class CentralUnavailable(LidmError):
    """The central database could not be reached or dropped the connection mid-transaction (transient: retry)."""


class CentralNotSetUp(ConfigError):
    """A command that only reads found no central database set up where the settings point (LIDM_CENTRAL_URL)."""


class CentralSchemaBehind(ConfigError):
    """The central database lacks a table or column a contract needs: a migration is to be written or applied
    (`lidm db revision`, `lidm db upgrade`), which no retry does."""


class FeedBusy(LidmError):
    """Another run of the same feed holds its lock: this run read, wrote and settled nothing."""

    def __init__(self, feed: str, message: str) -> None:
        self.feed = feed
        super().__init__(message)

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (FeedBusy, (self.feed, str(self)))


class RuleError(LidmError):
    """A monitoring rule cannot be loaded or names a feed, field or code the catalogue does not have."""

    retryable = False


class RuleParamError(ConfigError, RuleError):
    """LIDM_RULE_PARAMS names a rule or param that does not exist, or a value outside the range the rule declares:
    a configuration error about a rule, so either kind of handler catches it."""


class HostKeyError(SourceError):
    """An SFTP server presented an unknown or changed host key (never worth a retry)."""

    retryable = False


class RejectedBatch(LidmError):
    """A whole batch cannot be accepted (wrong encoding, missing column, replay...): a data fault."""

    retryable = False

    def __init__(
        self, reason: str, message: str, *, file: str | None = None, row: int | None = None, field: str | None = None
    ) -> None:
        self.reason = reason
        self.file = file
        self.row = row
        self.field = field
        where = ", ".join(
            part
            for part in (
                (f"file {file}" if "/" in file or "\\" in file else f"source {file}") if file else "",
                f"row {row}" if row is not None else "",
                f"field {field}" if field else "",
            )
            if part
        )
        self.message = message
        super().__init__(f"[{reason}] {where + ': ' if where else ''}{message}")

    def __reduce__(self):  # type: ignore[no-untyped-def]
        # Crosses a process boundary from a transform worker with its place (file, row, field) intact.
        return (partial(RejectedBatch, file=self.file, row=self.row, field=self.field), (self.reason, self.message))
