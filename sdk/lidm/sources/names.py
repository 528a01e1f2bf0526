"""File names in a drop folder: bytes on disk and on the wire, one path component, shown readably.

A name travels as str decoded with UTF-8 ``surrogateescape`` (what os functions use), so a GBK-encoded name is
opened and moved under its own bytes; ``display_name`` is the form written to logs, reasons and the central
database. ``Listing`` is what both stores keep of a folder: regular files with plain names, the rest warned once.
"""

from __future__ import annotations

import logging

from lidm.errors import SourceError

log = logging.getLogger("lidm.sources")

TEXT_LIMIT = 1 << 20  # a marker, manifest or signature is a few lines; never read more of one


def raw_name(name: str) -> bytes:
    """A file name's bytes on disk or on the wire (the inverse of decoding with surrogateescape)."""
    return name.encode("utf-8", "surrogateescape")


def display_name(name: str) -> str:
    """A file name as a person reads it: UTF-8, else GB18030, else escaped bytes; never a control character."""
    try:
        raw = raw_name(name)
    except UnicodeEncodeError:
        raw = name.encode("utf-8", "backslashreplace")
    for encoding in ("utf-8", "gb18030"):
        try:
            text = raw.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    else:
        text = raw.decode("utf-8", "backslashreplace")
    # Line breaks and bidi overrides would forge lines in logs and reasons or disguise an extension.
    return "".join(c if c.isprintable() else _escape(c) for c in text)


def _escape(c: str) -> str:
    n = ord(c)
    return f"\\x{n:02x}" if n < 0x100 else f"\\u{n:04x}" if n < 0x10000 else f"\\U{n:08x}"


def check_name(name: str, where: str) -> str:
    """A name used inside a drop folder must be a single file name: no folder, no '..', no NUL."""
    bad = not name or name in (".", "..") or any(c in name for c in ("/", "\\", "\x00"))
    if not bad:
        try:
            raw_name(name)
        except UnicodeEncodeError:
            bad = True
    if bad:
        raise SourceError(
            f"{where}: refusing the file name '{display_name(name)}': a drop is named by one file name, without "
            "folders, '..' or NUL; rename it"
        )
    return name


class Listing:
    """Which entries of a drop folder are drops: regular files with a plain name; the rest is logged once."""

    def __init__(self, where: str) -> None:
        self.where = where
        self._warned: set[str] = set()

    def keep(self, entries: list[tuple[str, bool, bool]]) -> list[str]:
        """(name, is_regular, is_symlink) per entry -> the drop names, sorted."""
        names = []
        for name, regular, link in entries:
            if not regular:
                if link:
                    self._warn(name, "is a symlink")
                continue
            try:
                names.append(check_name(name, self.where))
            except SourceError:
                self._warn(name, "has a name that is not a plain file name")
        return sorted(names)

    def _warn(self, name: str, what: str) -> None:
        if name not in self._warned:
            self._warned.add(name)
            log.warning(
                "%s: '%s' %s; ignored (a drop is a regular file in the folder)", self.where, display_name(name), what
            )
