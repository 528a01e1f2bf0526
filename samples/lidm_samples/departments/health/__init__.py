"""卫健委 (health commission): the population register, death records and hospital settlements in its own
database, and the disease emergency relief fund's spreadsheet dropped by its fund office.

One module per dataset. The settlements are the same events the medical security bureau settles; the names
other departments build on (settlements, insurance schemes, death dates, update times) are re-exported here.
"""

from __future__ import annotations

from lidm_samples.departments.health._common import update_time
from lidm_samples.departments.health.deaths import death_dates, deaths
from lidm_samples.departments.health.disease_emergency_fund import disease_emergency_fund
from lidm_samples.departments.health.medical_expenses import medical_expenses
from lidm_samples.departments.health.population import population
from lidm_samples.departments.health.settlements import Settlement, assisted_on, hospital_settlements, insurance_types
from lidm_samples.people import REFERENCE_DATE
from lidm_samples.sources import SampleSource

__all__ = [
    "SOURCES",
    "Settlement",
    "assisted_on",
    "death_dates",
    "hospital_settlements",
    "insurance_types",
    "update_time",
]

SOURCES = [
    SampleSource("health.population", "health_db", population, table="t_population", server="mariadb"),
    SampleSource("health.deaths", "health_db", deaths, table="t_death_register", server="mariadb"),
    SampleSource("health.medical_expenses", "health_db", medical_expenses, table="t_med_settlement", server="mariadb"),
    SampleSource(
        "health.disease_emergency_fund",
        "health_drop",
        disease_emergency_fund,
        file=f"emergency_fund_{REFERENCE_DATE:%Y%m%d}.xlsx",
        serial_dates=("申请日期",),
    ),
]
