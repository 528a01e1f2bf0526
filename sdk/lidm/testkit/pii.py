"""The PII-leak scanner: finds raw ID numbers, mobile numbers and bank-card numbers in anything the
gateway writes or says, so a department can show that protection really happened.

Two nets, because each misses what the other catches:
- patterns with their own checksums (GB 11643 check character, Luhn), which find any person's number,
  not only the ones in the sample, and rarely fire on tokens or ciphertext;
- the exact raw values read from the source (ID numbers, phones, card numbers, names), which catch a
  value that slipped through in another shape (a name in a message, a phone without its pattern).

A finding names where (table.column, row, log line, file) and what kind, never the value itself.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from lidm.idnumber import check_char

# Digits not glued to other letters or digits: a 64-hex token or base64 ciphertext holds long digit
# runs only by rare chance, and then the checksums below reject almost all of them.
_DATE = r"(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])"
_ID18 = re.compile(rf"(?<![0-9A-Za-z])([1-9]\d{{5}}(?:18|19|20)\d{{2}}{_DATE}\d{{3}}[\dXx])(?![0-9A-Za-z])")
_ID15 = re.compile(rf"(?<![0-9A-Za-z])([1-9]\d{{5}}\d{{2}}{_DATE}\d{{3}})(?![0-9A-Za-z])")
_PHONE = re.compile(r"(?<![0-9A-Za-z])(1[3-9]\d{9})(?![0-9A-Za-z])")
_RUN = re.compile(r"\d{7,}[Xx]?")
_CARD = re.compile(r"(?<![0-9A-Za-z])([3-6]\d{15,18})(?![0-9A-Za-z])")


def _luhn(number: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(number)):
        d = int(ch) * (2 if i % 2 else 1)
        total += d - 9 if d > 9 else d
    return total % 10 == 0


def kinds_in(text: str) -> list[str]:
    """The kinds of personal number found in a text: id_number, phone, bank_card."""
    found = []
    if any(check_char(m[:17]) == m[17].upper() for m in _ID18.findall(text)) or _ID15.search(text):
        found.append("id_number")
    if _PHONE.search(text):
        found.append("phone")
    if any(_luhn(m) for m in _CARD.findall(text)):
        found.append("bank_card")
    return found


@dataclass(frozen=True)
class Finding:
    where: str  # e.g. "table health_population.address row 3", "log line 12", "manifest of batch …"
    kind: str  # id_number | phone | bank_card | name | known_value

    def __str__(self) -> str:
        return f"{self.kind} in {self.where}"


@dataclass
class Scanner:
    """Scans texts for personal numbers and for raw values known from the source."""

    known: set[str] = field(default_factory=set)  # raw ID numbers, phones, card numbers: found as digit runs
    known_names: set[str] = field(default_factory=set)  # raw names: found as whole values only
    findings: list[Finding] = field(default_factory=list)
    scanned: int = 0

    def learn(self, values: Iterable[object], *, whole_only: bool = False) -> None:
        """Remember raw values to look for (skipping ones too short to mean anything)."""
        target = self.known_names if whole_only else self.known
        for v in values:
            if v is None:
                continue
            text = str(v).strip()
            if len(text) >= (2 if whole_only else 7):
                target.add(text if whole_only else text.upper())

    def scan(self, text: object, where: str) -> None:
        if text is None:
            return
        value = str(text)
        self.scanned += 1
        for kind in kinds_in(value):
            self.findings.append(Finding(where, kind))
        if value.strip() in self.known_names:
            self.findings.append(Finding(where, "name"))
        if self.known and any(run.upper() in self.known for run in _RUN.findall(value)):
            self.findings.append(Finding(where, "known_value"))

    def scan_many(self, texts: Iterable[object], where: str) -> None:
        for i, text in enumerate(texts, start=1):
            self.scan(text, f"{where} {i}")
