"""A rule's params as declared: a type and a range, so a default or an override outside them never reaches SQL.

Every value is checked here, when a rule file loads (its default) and when LIDM_RULE_PARAMS overrides it; the
compiler then only ever sees a finite int or Decimal within the rule's own bounds.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, model_validator

Number = int | Decimal
KINDS = {"integer": "a whole number", "decimal": "a decimal number", "days": "a whole number of days"}
KEYS = ("type", "default", "min", "max")
_LONGEST = 40  # characters of a number given as text: anything longer is no threshold
_LARGEST = 15  # decimal exponent beyond which a number is outside every range (and too big to turn into an int)


class ParamProblem(ValueError):
    """What is wrong with one value: its kind of problem, naming the value only when it is a number."""


class Param(BaseModel):
    """One declared param: ``{type: integer|decimal|days, default: v, min: v, max: v}``, all four required."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    type: Literal["integer", "decimal", "days"]
    default: Any
    min: Any
    max: Any

    @model_validator(mode="before")
    @classmethod
    def _declared(cls, data: Any) -> Any:
        if not isinstance(data, dict) or set(data) != set(KEYS) or data["type"] not in KINDS:
            raise ValueError(
                f"declare a param as {{type: {'|'.join(KINDS)}, default: v, min: v, max: v}}, e.g. "
                "{type: decimal, default: 20000, min: 0, max: 1000000}"
            )
        kind = data["type"]
        bounds = {}
        for key in ("min", "max"):
            try:
                bounds[key] = number(kind, data[key])
            except ParamProblem as exc:
                raise ValueError(f"{key} {exc}") from None
        if bounds["min"] > bounds["max"]:
            raise ValueError(f"min {bounds['min']} is above max {bounds['max']}")
        if kind == "days" and bounds["min"] < 0:
            raise ValueError(f"min {bounds['min']}: a number of days is not negative")
        declared = cls.model_construct(type=kind, default=None, **bounds)
        try:
            default = declared.parse(data["default"])
        except ParamProblem as exc:
            raise ValueError(f"default {exc}; allowed: {declared.allowed()}") from None
        return {"type": kind, "default": default, **bounds}

    def parse(self, raw: Any) -> Number:
        """The value as the rule uses it (an int, or a Decimal with a fraction); ParamProblem if it is not one."""
        value = number(self.type, raw)
        if value < self.min:
            raise ParamProblem(f"{value} is below the minimum {self.min}")
        if value > self.max:
            raise ParamProblem(f"{value} is above the maximum {self.max}")
        return value

    def allowed(self) -> str:
        """The range in words, for messages and `lidm monitor rules`."""
        return f"{KINDS[self.type]} from {self.min} to {self.max}"

    def as_row(self) -> dict[str, Any]:
        """The declaration for `lidm monitor rules --json`."""
        return {"type": self.type, "min": self.min, "max": self.max, "default": self.default}


def number(kind: str, raw: Any) -> Number:
    """A finite number of the kind (whole for integer and days) from YAML, JSON or text; ParamProblem otherwise."""
    if isinstance(raw, bool):  # YAML and JSON true is no 1
        raise ParamProblem("is true/false, not a number")
    if isinstance(raw, str):
        raw = raw.strip()
        if len(raw) > _LONGEST:
            raise ParamProblem(f"is not a number (text of {len(raw)} characters)")
    elif not isinstance(raw, int | float | Decimal):
        raise ParamProblem("is not a number" if raw is None else f"is not a number but a {type(raw).__name__}")
    try:
        value = Decimal(str(raw))
    except InvalidOperation:
        raise ParamProblem("is not a number") from None
    if not value.is_finite():
        raise ParamProblem("is not a finite number (NaN or infinity)")
    if value and value.adjusted() > _LARGEST:
        raise ParamProblem(f"{value} is outside any range")
    if value == value.to_integral_value():
        return int(value)
    if kind != "decimal":
        raise ParamProblem(f"{value} is not a whole number")
    return value.normalize()
