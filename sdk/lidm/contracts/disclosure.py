"""Disclosure: what a consumer can rebuild of a masked value from everything else the catalogue grants it.

A mask hides parts of a value; other fields granted to the same consumer may reveal some of them (a clear
birth_date reveals the eight birth-date digits of an ID number). The parts left hidden give a number of
candidates; fewer than REBUILD_THRESHOLD and the consumer can rebuild a value it was only granted masked.

The model is deliberately small and explicit:
- each kind of value (ID number, phone, name or other text) is a set of parts, each with the number of
  candidates it has when hidden (a part derived from the others, the ID check character, has 1; shown, it
  filters the candidates of the hidden parts by its modulus);
- each mask format declares which parts it shows (MASK_FORMATS mirrors lidm.protect.mask, and the tests hold
  the two together);
- each field reveals parts by what it is: a birth date, a gender, a division code (lidmCheck division_code),
  when granted clear (or as a token, if it has few possible values: an enum, a division code);
- fields reveal parts of a masked value when they describe the same person: the other fields of the same
  rows, and the fields of another dataset the consumer can join on the person (both grant it an ID number at
  token or clear level: tokens are the same in every feed).

A field of the same kind is not counted as revealing (phone masked here, phone clear in another dataset; an ID
number clear in another dataset): where the consumer is granted that value in clear it already holds it for
exactly those persons, so combining the two teaches it nothing; and a second field of a kind in the same rows
is somebody else's (guardian_phone next to phone). The same field granted clear to the consumer through
another grant on the same dataset is not a rebuild either: it is a grant.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum

import sqlalchemy as sa

from lidm.contracts.load import ContractCatalog
from lidm.contracts.model import Check, Classification, Contract, Field, GrantLevel, LogicalType, Protection

# Fewer remaining candidates than this and a masked value counts as rebuilt: a blind guess is then right more
# than once in a hundred, and a consumer with any oracle (a list of clear numbers, a real-name check) tries them
# all. Not higher: birth date, gender and district alone leave 500 ID numbers whatever the mask shows (the
# sequence), so a threshold above that would forbid any ID display beside those fields, masked or not.
REBUILD_THRESHOLD = 100


class Part(StrEnum):
    """A part of a value that a mask shows or hides and that another field may reveal."""

    REGION = "region"  # ID digits 1-4: province and city
    DISTRICT = "district"  # ID digits 5-6: county or district
    BIRTH_DATE = "birth_date"  # ID digits 7-14
    SEQUENCE_HIGH = "sequence_high"  # ID digits 15-16
    SEQUENCE_LOW = "sequence_low"  # ID digit 17 once its parity is known: 5 values
    GENDER = "gender"  # parity of ID digit 17 (odd = male)
    CHECK = "check"  # ID character 18, ISO 7064 MOD 11-2 of the other 17
    PHONE_HEAD = "phone_head"  # first three digits: mobile network segment or area code
    PHONE_MIDDLE = "phone_middle"  # the digits between head and tail
    PHONE_TAIL = "phone_tail"  # last four digits
    TEXT_FIRST = "text_first"  # first character: a name's surname
    TEXT_REST = "text_rest"  # the other characters: a name's given name


@dataclass(frozen=True)
class ValueKind:
    """A kind of value as parts, each with its number of candidates when hidden (1: derived from the others)."""

    name: str
    parts: Mapping[Part, int]
    check: tuple[Part, int] | None = None  # a derived part and its modulus: shown, it filters the others


ID_NUMBER = ValueKind(
    "id_number",
    {
        Part.REGION: 400,  # about 340 prefecture-level divisions, rounded up
        Part.DISTRICT: 30,  # a city has ten to thirty; the fewer, the more careful
        Part.BIRTH_DATE: 36_525,  # a hundred years of days
        Part.SEQUENCE_HIGH: 100,
        Part.SEQUENCE_LOW: 5,
        Part.GENDER: 2,
        Part.CHECK: 1,
    },
    check=(Part.CHECK, 11),
)
# The middle of a phone number as the phone check allows it at its shortest: a 10-digit landline (0101234567)
# keeps three digits between head and tail; a mobile number keeps four.
PHONE = ValueKind("phone", {Part.PHONE_HEAD: 50, Part.PHONE_MIDDLE: 1_000, Part.PHONE_TAIL: 10_000})
# A name's characters: 3755 is GB 2312 level 1 (the common characters); a two-character name hides one.
TEXT = ValueKind("text", {Part.TEXT_FIRST: 500, Part.TEXT_REST: 3_755})


@dataclass(frozen=True)
class MaskFormat:
    """A display form: the parts of its kind of value that it shows."""

    kind: ValueKind
    example: str
    shows: frozenset[Part]

    @property
    def hides(self) -> frozenset[Part]:
        return frozenset(self.kind.parts) - self.shows


ID_MASK = MaskFormat(ID_NUMBER, "4301**************", frozenset({Part.REGION}))
PHONE_MASK = MaskFormat(PHONE, "138****5678", frozenset({Part.PHONE_HEAD, Part.PHONE_TAIL}))
TEXT_MASK = MaskFormat(TEXT, "王*", frozenset({Part.TEXT_FIRST}))
# The current formats of lidm.protect.mask, by the kind of field it masks.
MASK_FORMATS: Mapping[str, MaskFormat] = {"id_number": ID_MASK, "phone": PHONE_MASK, "text": TEXT_MASK}

# Formats not to use, kept so the tests show why: the one before issue 15, and the first proposal.
ID_MASK_DIVISION_LAST4 = MaskFormat(
    ID_NUMBER,
    "430102********1234",
    frozenset({Part.REGION, Part.DISTRICT, Part.SEQUENCE_HIGH, Part.SEQUENCE_LOW, Part.GENDER, Part.CHECK}),
)
ID_MASK_CITY_LAST2 = MaskFormat(
    ID_NUMBER, "4301************13", frozenset({Part.REGION, Part.SEQUENCE_LOW, Part.GENDER, Part.CHECK})
)


def mask_kind(field: Field) -> str:
    """Which format lidm.protect.mask gives a field: the same dispatch, on the field's checks."""
    if Check.ID_NUMBER in field.checks:
        return "id_number"
    if Check.PHONE in field.checks:
        return "phone"
    return "text"


def reveals(field: Field, level: GrantLevel) -> frozenset[Part]:
    """Parts of other values that a field granted at a level shows: it is a birth date, a gender, a place."""
    name = field.name.lower()
    if level is GrantLevel.MASKED:
        return frozenset()  # the text mask shows a first character only: no part of a date, a gender or a code
    small = bool(field.enum) or Check.DIVISION_CODE in field.checks
    if level is GrantLevel.TOKEN and not small:
        return frozenset()  # a token of a value with few possible values is as good as the value: count it
    out: set[Part] = set()
    if name.endswith("birth_date"):
        out.add(Part.BIRTH_DATE)
    if name.endswith(("gender", "sex")):
        out.add(Part.GENDER)
    if Check.DIVISION_CODE in field.checks:
        out |= {Part.REGION, Part.DISTRICT}
    return frozenset(out)


def candidates(fmt: MaskFormat, known: Iterable[Part]) -> int:
    """How many values fit a mask once the known parts are filled in."""
    hidden = fmt.hides - set(known)
    n = math.prod(fmt.kind.parts[p] for p in hidden)
    if fmt.kind.check and fmt.kind.check[0] in fmt.shows and n > 1:
        n = math.ceil(n / fmt.kind.check[1])
    return n


@dataclass(frozen=True)
class Rebuild:
    """A masked field one consumer can rebuild, with the granted fields that reveal its hidden parts."""

    consumer: str
    contract: str  # the dataset (contract id) where the field is granted masked
    field: str
    source_file: str | None
    line: int | None  # the grant that gives the field masked
    format: str  # the mask's example
    hidden: tuple[str, ...]  # parts the mask hides
    revealed_by: tuple[str, ...]  # "contract.field (part, part)" of the fields revealing hidden parts
    candidates: int

    def __str__(self) -> str:
        return (
            f"{self.consumer} can rebuild {self.contract}.{self.field} (granted masked as {self.format}): "
            f"{', '.join(self.revealed_by) or 'nothing else'} reveal what the mask hides, "
            f"{self.candidates} candidate(s) remain"
        )


def _levels(catalog: ContractCatalog, consumer: str) -> dict[str, tuple[Contract, dict[str, set[GrantLevel]]]]:
    """Per dataset, every level at which each field reaches a consumer (through several grants, perhaps)."""
    out: dict[str, tuple[Contract, dict[str, set[GrantLevel]]]] = {}
    for c, g in catalog.grants_for(consumer):
        _, fields = out.setdefault(c.id, (c, defaultdict(set)))
        for name, level in g.fields.items():
            fields[name].add(level)
    return out


def _person_key(c: Contract, fields: Mapping[str, set[GrantLevel]]) -> bool:
    """The consumer can join this dataset's rows to other datasets on the person: an ID number, token or clear."""
    return any(
        Check.ID_NUMBER in c.field(name).checks and levels & {GrantLevel.TOKEN, GrantLevel.CLEAR}
        for name, levels in fields.items()
    )


def _grant_line(c: Contract, consumer: str, catalog: ContractCatalog, field: str) -> int | None:
    members = catalog.consumers.expand if catalog.consumers is not None else lambda _: []
    for g in c.grants:
        if g.fields.get(field) is GrantLevel.MASKED and any(m.id == consumer for m in members(g.consumer)):
            return g.line
    return None


def rebuildable_for(
    catalog: ContractCatalog,
    consumer: str,
    formats: Mapping[str, MaskFormat] | None = None,
    threshold: int = REBUILD_THRESHOLD,
) -> list[Rebuild]:
    """The masked fields one consumer can rebuild from everything granted to it together."""
    formats = formats or MASK_FORMATS
    datasets = _levels(catalog, consumer)
    linked = {cid for cid, (c, fields) in datasets.items() if _person_key(c, fields)}
    out = []
    for cid, (c, fields) in datasets.items():
        for name, levels in fields.items():
            if GrantLevel.MASKED not in levels or GrantLevel.CLEAR in levels:
                continue  # clear through another grant: the consumer holds the value anyway
            fmt = formats[mask_kind(c.field(name))]
            # The same rows always describe the same person; another dataset only when both join on the person.
            sources = [(cid, c, fields)]
            if cid in linked:
                sources += [(o, oc, of) for o, (oc, of) in datasets.items() if o != cid and o in linked]
            known: set[Part] = set()
            by: list[str] = []
            for oid, oc, ofields in sources:
                for other, olevels in ofields.items():
                    f = oc.field(other)
                    if (oid, other) == (cid, name):
                        continue
                    parts = set().union(*(reveals(f, lv) for lv in olevels)) & fmt.hides
                    if parts:
                        known |= parts
                        by.append(f"{oid}.{other} ({', '.join(sorted(parts))})")
            n = candidates(fmt, known)
            if n < threshold:
                out.append(
                    Rebuild(
                        consumer=consumer,
                        contract=cid,
                        field=name,
                        source_file=c.source_file,
                        line=_grant_line(c, consumer, catalog, name),
                        format=fmt.example,
                        hidden=tuple(sorted(fmt.hides)),
                        revealed_by=tuple(by),
                        candidates=n,
                    )
                )
    return out


def rebuildable(
    catalog: ContractCatalog,
    formats: Mapping[str, MaskFormat] | None = None,
    threshold: int = REBUILD_THRESHOLD,
) -> list[Rebuild]:
    """Every masked field some consumer can rebuild: non-empty means the grants must not be applied."""
    if catalog.consumers is None:
        return []
    return [r for m in catalog.consumers.members for r in rebuildable_for(catalog, m, formats, threshold)]


# --------------------------------------------------------------------------- k-anonymity (GB/T 37964)


def quasi_identifiers(catalog: ContractCatalog) -> dict[str, dict[str, list[str]]]:
    """Per consumer and dataset, the central columns of quasi-identifiers it reads in bulk, for smallest_group.

    A quasi-identifier granted clear (where the contract keeps a clear column) or masked; a date as its year
    ("birth_date:year"), as a k-anonymity measure generalizes it. Tokens are left out: a token is a
    pseudonym meant for joining (a household's token makes groups of one household by design).
    """
    out: dict[str, dict[str, list[str]]] = {}
    for consumer in catalog.consumers.members if catalog.consumers else ():
        per: dict[str, list[str]] = {}
        for c, fields in _levels(catalog, consumer).values():
            cols = []
            for name, levels in fields.items():
                f = c.field(name)
                if f.classification is not Classification.QUASI_IDENTIFIER:
                    continue
                if GrantLevel.CLEAR in levels and Protection.CLEAR in f.protection:
                    dated = f.type in (LogicalType.DATE, LogicalType.TIMESTAMP)
                    cols.append(f"{name}:year" if dated else name)
                elif GrantLevel.MASKED in levels:
                    cols.append(f"{name}_masked")
            if cols:
                per[c.id] = cols
        out[consumer] = per
    return out


def smallest_group(conn: sa.Connection, table: str, quasi_columns: Iterable[str]) -> int:
    """The k of k-anonymity: the fewest live rows sharing one combination of the quasi-identifier columns.

    A column written "name:year" groups by the year of a date. 0 for a table without live rows; 1 means
    somebody is alone with their combination, which a consumer can single out.
    """
    q = conn.dialect.identifier_preparer.quote
    exprs = [f"EXTRACT(YEAR FROM {q(c.removesuffix(':year'))})" if c.endswith(":year") else q(c) for c in quasi_columns]
    if not exprs:
        raise ValueError("smallest_group needs at least one quasi-identifier column")
    sql = (
        f"SELECT MIN(n) FROM (SELECT COUNT(*) AS n FROM {q(table)} "
        f'WHERE "_retired_batch" IS NULL GROUP BY {", ".join(exprs)}) AS g'
    )
    return int(conn.execute(sa.text(sql)).scalar() or 0)


MIN_K = 5  # below this, a consumer can single people out (reported; a contract's lidmMinK makes it a gate)


@dataclass(frozen=True)
class KReport:
    consumer: str
    contract: str
    columns: tuple[str, ...]
    k: int  # 0: no live rows yet

    @property
    def below(self) -> bool:
        return 0 < self.k < MIN_K


def k_report(catalog: ContractCatalog, conn: sa.Connection) -> list[KReport]:
    """k per consumer and dataset over the live rows, for the quasi-identifiers each consumer reads in bulk."""
    tables = set(sa.inspect(conn).get_table_names())
    out = []
    for consumer, per in quasi_identifiers(catalog).items():
        for contract_id, columns in per.items():
            table = catalog[contract_id].table
            if table in tables:
                out.append(KReport(consumer, contract_id, tuple(columns), smallest_group(conn, table, columns)))
    return out


def _sees_a_direct_identifier(c: Contract, fields: Mapping[str, set[GrantLevel]]) -> bool:
    """A consumer reading a name or ID number in clear knows who a row is: k says nothing more there."""
    return any(
        c.field(n).classification is Classification.DIRECT_IDENTIFIER
        and GrantLevel.CLEAR in levels
        and Protection.CLEAR in c.field(n).protection
        for n, levels in fields.items()
    )


def below_min_k(catalog: ContractCatalog, conn: sa.Connection) -> list[KReport]:
    """Releases under their contract's lidmMinK, to consumers that see no direct identifier in clear."""
    gated = {c.id for c in catalog if c.min_k is not None}
    if not gated:
        return []
    tables = set(sa.inspect(conn).get_table_names())
    out = []
    for consumer, per in quasi_identifiers(catalog).items():
        levels = _levels(catalog, consumer)
        for contract_id, columns in per.items():
            c = catalog[contract_id]
            if contract_id not in gated or c.table not in tables or _sees_a_direct_identifier(c, levels[c.id][1]):
                continue
            k = smallest_group(conn, c.table, columns)
            if 0 < k < (c.min_k or 0):
                out.append(KReport(consumer, contract_id, tuple(columns), k))
    return out
