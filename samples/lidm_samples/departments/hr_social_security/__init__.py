"""人社局 (human resources and social security): employment, unemployment, work injury and pensions, in its
MariaDB database.

One career history per person (jobs and unemployment registrations) and one pension scheme per pensioner are
decided once (``careers``, ``pensions.pension_schemes``), so the employment, unemployment, pension and
work-injury tables tell the same story: an unemployed person's last job ended just before they registered, a
worker insured by an employer works there.
"""

from __future__ import annotations

from lidm_samples.departments.hr_social_security.employment import employment
from lidm_samples.departments.hr_social_security.pensions import enterprise_pension, institution_pension
from lidm_samples.departments.hr_social_security.unemployment import unemployment
from lidm_samples.departments.hr_social_security.work_injury import work_injury
from lidm_samples.sources import SampleSource

SOURCES = [
    SampleSource("hr_social_security.employment", "hr_db", employment, table="t_jydj", server="mariadb"),
    SampleSource("hr_social_security.unemployment", "hr_db", unemployment, table="t_sydj", server="mariadb"),
    SampleSource("hr_social_security.work_injury", "hr_db", work_injury, table="t_gsdy", server="mariadb"),
    SampleSource(
        "hr_social_security.enterprise_pension", "hr_db", enterprise_pension, table="t_qyzgyl", server="mariadb"
    ),
    SampleSource(
        "hr_social_security.institution_pension", "hr_db", institution_pension, table="t_jgsyyl", server="mariadb"
    ),
]
