"""education.student_enrollment: the monthly student enrollment workbook (XLSX)."""

from __future__ import annotations

from lidm_samples.departments.education.students import STAGE_LABELS, students
from lidm_samples.people import REFERENCE_DATE
from lidm_samples.sources import SampleTable, inject, moment, set_value, text, wrong_check_char
from lidm_samples.world import World

ENROLLMENT_STATUS_LABELS = {
    "enrolled": "在读",
    "suspended": "休学",
    "dropped_out": "辍学",
    "graduated": "毕业",
    "transferred": "转学",
}
HARDSHIP_LABELS = {
    "especially_difficult": "特别困难",
    "difficult": "比较困难",
    "generally_difficult": "一般困难",
    "not_difficult": "不困难",
}
ENROLLMENT_HEADER = (
    "姓名", "性别", "身份证件号", "出生日期", "户号", "学校标识码", "学校名称", "学段", "年级", "班级",
    "学籍状态", "入学日期", "学籍变动日期", "是否寄宿", "家庭经济困难认定等级", "学校所在区县代码", "更新时间",
)  # fmt: skip


def student_enrollment(world: World, bad: int) -> SampleTable:
    rng = world.rng("education.student_enrollment")
    rows = []
    for s in students(world):
        p = s.person
        last = max(s.enrolled, s.changed or s.enrolled)
        rows.append(
            {
                "姓名": p.name,
                "性别": "男" if p.gender == "male" else "女",
                "身份证件号": p.id_number,
                "出生日期": p.birth_date,
                "户号": p.household_id if rng.random() < 0.9 else None,
                "学校标识码": s.school.code,
                "学校名称": s.school.name,
                "学段": STAGE_LABELS[s.stage],
                "年级": s.grade,
                "班级": f"{rng.randint(1, 12)}班",
                "学籍状态": ENROLLMENT_STATUS_LABELS[s.status],
                "入学日期": s.enrolled,
                "学籍变动日期": f"{s.changed:%Y/%m/%d}" if s.changed else None,
                "是否寄宿": "是" if s.boarding else "否",
                "家庭经济困难认定等级": HARDSHIP_LABELS[s.hardship] if s.hardship else None,
                "学校所在区县代码": s.school.district,
                "更新时间": moment(rng, days=max(1, min((REFERENCE_DATE - last).days, 400))),
            }
        )
    kinds = inject(
        rows,
        bad,
        f"{world.seed}:education.student_enrollment",
        {
            "bad_check_char": wrong_check_char("身份证件号"),
            "unknown_school_stage": set_value("学段", "特殊教育"),
            "impossible_enrollment_date": set_value("入学日期", "2026-02-30"),
            "grade_out_of_range": set_value("年级", 9),
            "duplicate_key": None,
        },
    )
    return SampleTable({c: text() for c in ENROLLMENT_HEADER}, rows, kinds)
