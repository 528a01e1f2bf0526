"""民政局 (civil affairs): the low-income roster (a daily GBK CSV drop) and the assistance system's tables.

The tables live in the civil-affairs PostgreSQL database: children in need, the two disability subsidies
(full monthly snapshots) and temporary assistance cases (incremental on a timestamptz update time); and the streets'
home visit findings (走访), dropped as the XLSX template.
"""

from __future__ import annotations

from lidm_samples.departments.civil_affairs.children_in_need import children_in_need
from lidm_samples.departments.civil_affairs.hardship_disability_subsidy import hardship_disability_subsidy
from lidm_samples.departments.civil_affairs.home_visit import SOURCE as HOME_VISIT
from lidm_samples.departments.civil_affairs.low_income_roster import low_income_roster
from lidm_samples.departments.civil_affairs.severe_disability_care_subsidy import severe_disability_care_subsidy
from lidm_samples.departments.civil_affairs.temporary_assistance import temporary_assistance
from lidm_samples.people import REFERENCE_DATE
from lidm_samples.sources import SampleSource

SOURCES = [
    SampleSource(
        "civil_affairs.low_income_roster",
        "civil_affairs_drop",
        low_income_roster,
        file=f"roster_{REFERENCE_DATE:%Y%m%d}.csv",
        encoding="gb18030",
    ),
    SampleSource(
        "civil_affairs.children_in_need",
        "civil_affairs_db",
        children_in_need,
        table="t_kjet_gesw",
        server="postgres",
    ),
    SampleSource(
        "civil_affairs.hardship_disability_subsidy",
        "civil_affairs_db",
        hardship_disability_subsidy,
        table="t_cjr_knshbt",
        server="postgres",
    ),
    SampleSource(
        "civil_affairs.severe_disability_care_subsidy",
        "civil_affairs_db",
        severe_disability_care_subsidy,
        table="t_cjr_zdhlbt",
        server="postgres",
    ),
    SampleSource(
        "civil_affairs.temporary_assistance",
        "civil_affairs_db",
        temporary_assistance,
        table="t_lsjz_aj",
        server="postgres",
    ),
    HOME_VISIT,  # the streets' home visit findings (走访), an XLSX drop
]
