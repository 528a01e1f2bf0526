"""教育局 (education bureau): the monthly student enrollment workbook and the daily student aid CSV, both dropped
on SFTP with Chinese headers.

Who studies where, in which stage and grade, and whose family the school assessed as in hardship is decided
once (``students``), so an aid award names the same school and stage as the student's enrollment row.
"""

from __future__ import annotations

from lidm_samples.departments.education.education_assistance import education_assistance
from lidm_samples.departments.education.student_enrollment import student_enrollment
from lidm_samples.people import REFERENCE_DATE
from lidm_samples.sources import SampleSource

SOURCES = [
    SampleSource(
        "education.student_enrollment",
        "education_drop",
        student_enrollment,
        file=f"xjxx_{REFERENCE_DATE:%Y%m}.xlsx",
        serial_dates=("入学日期",),
    ),
    SampleSource(
        "education.education_assistance",
        "education_drop",
        education_assistance,
        file=f"xszz_{REFERENCE_DATE:%Y%m%d}.csv",
        encoding="utf-8-sig",
    ),
]
