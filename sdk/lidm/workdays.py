"""Working days (工作日) on China's official calendar: weekends, public holidays and make-up working days (调休).

The calendar is the State Council's yearly notice as the ``chinesecalendar`` package holds it, never a list kept
here. What "N working days" means:

- counting starts the working day *after* the day a warning is raised, so a warning raised on Friday with 1
  working day is due on Monday (or on the first working day after a holiday that starts that Monday);
- a warning raised on a holiday or weekend gets N working days after that holiday: the holiday days count for
  nothing, the make-up Saturday or Sunday counts like any working day;
- the due date is itself a working day (the Nth), and a warning becomes overdue the day after it, whatever that
  day is: answering on the due date is on time.

A deadline in calendar days (a rule's ``due_days``) that ends on a rest day moves to the next working day, as
Chinese procedural law does with a period whose last day is a holiday.

The package knows only the years whose notice it carries. A date beyond them cannot be counted: guessing
Monday-to-Friday would put due dates inside next year's Spring Festival, so every function here refuses such a
date with a :class:`~lidm.errors.ConfigError` that names the package, its version, its last year and the fix.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from functools import cache
from importlib.metadata import PackageNotFoundError, version

import chinese_calendar
from chinese_calendar import constants

from lidm.errors import ConfigError

PACKAGE = "chinesecalendar"
LONGEST = 1000  # working days: about four years, far beyond any deadline a rule may set


@cache
def package_version() -> str:
    """The installed chinesecalendar version, for the coverage message."""
    try:
        return version(PACKAGE)
    except PackageNotFoundError:  # vendored or installed without metadata
        return str(getattr(chinese_calendar, "__version__", "unknown"))


@cache
def covered_years() -> tuple[int, int]:
    """First and last year whose holiday notice the installed calendar holds (the package's own test)."""
    days = constants.holidays.keys()
    return min(days).year, max(days).year


def last_covered_day() -> date:
    """The last day a working-day count may reach."""
    return date(covered_years()[1], 12, 31)


def coverage_text() -> str:
    """One line for listings: which package, which version, which years."""
    first, last = covered_years()
    return f"{PACKAGE} {package_version()}: China's official holidays and make-up working days, {first}–{last}"


def uncovered(day: date, what: str) -> ConfigError:
    """The error for a day beyond the calendar: what needed it, the package, its version, its last year, the fix."""
    first, last = covered_years()
    side = "before" if day.year < first else "after"
    return ConfigError(
        f"{what} needs the official working-day calendar for {day.year}, but the installed {PACKAGE} "
        f"{package_version()} covers {first}–{last} only ({day.year} is {side} it). Upgrade it once the State "
        f"Council has published that year's holiday notice: pip install --upgrade '{PACKAGE}' (then restart the "
        "workers). Counting Monday to Friday instead would put due dates inside that year's holidays; if you "
        f"must run before the package has the notice, set LIDM_WORKDAYS_ASSUME_WEEKDAYS_THROUGH={day.year} to do "
        "exactly that on purpose until you upgrade."
    )


def check_covered(day: date, what: str) -> None:
    """Refuse ``day`` when the installed calendar does not hold its year."""
    first, last = covered_years()
    if not first <= day.year <= last:
        raise uncovered(day, what)


@dataclass(frozen=True)
class Calendar:
    """The official calendar, optionally stretched by the deployment's explicit stopgap: Monday to Friday count as
    working days in the years after the package's last one through ``assume_weekdays_through``
    (LIDM_WORKDAYS_ASSUME_WEEKDAYS_THROUGH), while that year's notice is not in the package yet. Unset: refused."""

    assume_weekdays_through: int | None = None

    def assumed(self, day: date) -> bool:
        """Whether ``day`` is counted by the stopgap, not by the official calendar."""
        last = covered_years()[1]
        return self.assume_weekdays_through is not None and last < day.year <= self.assume_weekdays_through

    def is_working_day(self, day: date, what: str = "a working-day count") -> bool:
        """Whether offices work on ``day``: a weekday that is no holiday, or a make-up working day."""
        if self.assumed(day):
            return day.weekday() < 5
        check_covered(day, what)
        return bool(chinese_calendar.is_workday(day))

    def add_working_days(self, start: date, n: int, what: str = "a due date") -> date:
        """The ``n``-th working day after ``start`` (``start`` itself never counts, working day or not)."""
        if not 0 < n <= LONGEST:
            raise ValueError(f"a number of working days from 1 to {LONGEST}, not {n}")
        day = start
        while n:
            day += timedelta(days=1)
            if self.is_working_day(day, what):
                n -= 1
        return day

    def next_working_day(self, day: date, what: str = "a due date") -> date:
        """``day`` if offices work on it, else the first working day after it."""
        while not self.is_working_day(day, what):
            day += timedelta(days=1)
        return day

    def working_days_between(self, start: date, end: date, what: str = "an overdue count") -> int:
        """Working days after ``start`` up to and including ``end`` (0 when ``end`` is not after ``start``): how
        many working days a warning due on ``start`` is overdue on ``end``."""
        count, day = 0, start
        while day < end:
            day += timedelta(days=1)
            count += self.is_working_day(day, what)
        return count


OFFICIAL = Calendar()  # the package's years only: what every deployment gets unless it sets the stopgap
is_working_day = OFFICIAL.is_working_day
add_working_days = OFFICIAL.add_working_days
next_working_day = OFFICIAL.next_working_day
working_days_between = OFFICIAL.working_days_between
