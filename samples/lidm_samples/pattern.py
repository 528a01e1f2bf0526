"""A random string that matches a contract field's pattern, for sample sources declared as data.

Contracts' patterns are short and simple (``^[0-9]{6}$``, ``^[0-9]{4}-(0[1-9]|1[0-2])$``), so this covers what they
use: literals and escapes, ``.``, ``\\d`` ``\\w``, character classes with ranges, groups with alternatives, and the
quantifiers ``? * + {n} {n,m}``. Anything else is refused with the pattern named, and a declaration then gives the
column's ``values`` or a ``serial`` instead.
"""

from __future__ import annotations

import random
import re
import string

from lidm.errors import ConfigError

_CLASSES = {"d": string.digits, "w": string.ascii_letters + string.digits + "_"}
_UNBOUNDED = 3  # the most repetitions * and + produce


class _Parser:
    def __init__(self, pattern: str) -> None:
        self.pattern = pattern
        text = pattern.removeprefix("^")
        self.text = text[:-1] if text.endswith("$") and not text.endswith("\\$") else text
        self.at = 0

    def refuse(self, what: str) -> ConfigError:
        return ConfigError(
            f"pattern {self.pattern!r}: {what} is more than sample generation understands; "
            "give the column values or a serial in its sample declaration"
        )

    def peek(self) -> str | None:
        return self.text[self.at] if self.at < len(self.text) else None

    def take(self) -> str:
        ch = self.text[self.at]
        self.at += 1
        return ch

    def alternatives(self) -> list[list[tuple[object, int, int]]]:
        """A | B | C: each a sequence of (atom, least, most)."""
        options = [self.sequence()]
        while self.peek() == "|":
            self.take()
            options.append(self.sequence())
        return options

    def sequence(self) -> list[tuple[object, int, int]]:
        out: list[tuple[object, int, int]] = []
        while self.peek() not in (None, "|", ")"):
            atom = self.atom()
            least, most = self.quantifier()
            out.append((atom, least, most))
        return out

    def atom(self) -> object:
        ch = self.take()
        if ch == "(":
            if self.text.startswith("?:", self.at):
                self.at += 2
            elif self.peek() == "?":
                raise self.refuse("a group of kind (?…)")
            inner = self.alternatives()
            if self.peek() != ")":
                raise self.refuse("an unclosed group")
            self.take()
            return inner
        if ch == "[":
            return self.klass()
        if ch == ".":
            return string.ascii_letters + string.digits
        if ch == "\\":
            return self.escape()
        if ch in "^$*+?{":
            raise self.refuse(f"{ch!r} in this place")
        return ch

    def escape(self) -> str:
        if self.peek() is None:
            raise self.refuse("a trailing backslash")
        ch = self.take()
        if ch in _CLASSES:
            return _CLASSES[ch]
        if ch.isalnum():
            raise self.refuse(f"the escape \\{ch}")
        return ch

    def klass(self) -> str:
        if self.peek() == "^":
            raise self.refuse("a negated class [^…]")
        chars: list[str] = []
        while self.peek() not in (None, "]"):
            ch = self.take()
            if ch == "\\":
                chars.append(self.escape())
            elif self.peek() == "-" and self.text[self.at + 1 : self.at + 2] not in ("", "]"):
                self.take()
                end = self.take()
                chars.append("".join(chr(c) for c in range(ord(ch), ord(end) + 1)))
            else:
                chars.append(ch)
        if self.peek() is None:
            raise self.refuse("an unclosed class")
        self.take()
        return "".join(dict.fromkeys("".join(chars)))

    def quantifier(self) -> tuple[int, int]:
        ch = self.peek()
        if ch == "?":
            self.take()
            return 0, 1
        if ch == "*":
            self.take()
            return 0, _UNBOUNDED
        if ch == "+":
            self.take()
            return 1, _UNBOUNDED
        if ch == "{":
            end = self.text.find("}", self.at)
            body = self.text[self.at + 1 : end] if end > 0 else ""
            found = re.fullmatch(r"(\d+)(,(\d*))?", body)
            if not found:
                raise self.refuse(f"the quantifier {{{body}}}")
            self.at = end + 1
            least = int(found.group(1))
            most = least if not found.group(2) else int(found.group(3) or least + _UNBOUNDED)
            return least, most
        return 1, 1


def _render(rng: random.Random, options: list[list[tuple[object, int, int]]]) -> str:
    out = []
    for atom, least, most in rng.choice(options):
        for _ in range(rng.randint(least, most)):
            out.append(_render(rng, atom) if isinstance(atom, list) else rng.choice(atom))  # type: ignore[arg-type]
    return "".join(out)


def check_pattern(pattern: str) -> None:
    """Refuse, naming the pattern, one that sample generation cannot produce strings for."""
    parser = _Parser(pattern)
    parser.alternatives()
    if parser.peek() is not None:
        raise parser.refuse(f"{parser.peek()!r} in this place")


def matching(pattern: str, rng: random.Random) -> str:
    """A string that ``re.search(pattern, ·)`` finds (anchored patterns match whole)."""
    parser = _Parser(pattern)
    options = parser.alternatives()
    if parser.peek() is not None:
        raise parser.refuse(f"{parser.peek()!r} in this place")
    value = _render(rng, options)
    if not re.search(pattern, value):
        raise parser.refuse("this pattern")
    return value
