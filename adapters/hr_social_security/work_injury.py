"""工伤保险待遇: the HR and social security bureau's work-injury benefit claims, one row per benefit kind of a
case, read from its database."""

from lidm import Adapter, SqlSource, codes

adapter = Adapter(
    contract="hr_social_security.work_injury",
    source=SqlSource(connection="hr_db", table="t_gsdy", watermark="gxsj"),
    mapping={
        "claim_id": "sqbh",
        "id_number": "sfzh",
        "name": "xm",
        "employer_name": "dwmc",
        "employer_credit_code": "tyxydm",
        "injury_kind": codes("shlb", {"1": "accident", "2": "occupational_disease"}),
        "injury_date": "shrq",
        "recognition_no": "rdsbh",
        "recognition_date": "rdrq",
        "disability_grade": codes(
            "scdj",
            {
                "01": "1",
                "02": "2",
                "03": "3",
                "04": "4",
                "05": "5",
                "06": "6",
                "07": "7",
                "08": "8",
                "09": "9",
                "10": "10",
            },
        ),
        "care_dependency": codes("zlzadj", {"1": "full", "2": "major", "3": "partial"}),
        "assessment_date": "jdrq",
        "benefit_kind": codes(
            "dylb",
            {
                "01": "medical",
                "02": "rehabilitation",
                "03": "assistive_device",
                "04": "hospital_meal",
                "05": "lump_sum_disability",
                "06": "disability_allowance",
                "07": "nursing_care",
                "08": "lump_sum_medical",
                "09": "funeral",
                "10": "dependant_pension",
                "11": "lump_sum_death",
            },
        ),
        "monthly_amount": "ydyje",
        "lump_sum_amount": "ycxje",
        "benefit_start_date": "dyqsrq",
        "benefit_end_date": "dyzzrq",
        "status": codes(
            "dyzt",
            {
                "1": "accepted",
                "2": "approved",
                "3": "paying",
                "4": "paid",
                "5": "suspended",
                "6": "terminated",
                "7": "rejected",
            },
        ),
        "district_code": "cbqx",
        "updated_at": "gxsj",
    },
    pool="hr_social_security",
)
