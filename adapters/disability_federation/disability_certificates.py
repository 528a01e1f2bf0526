"""残疾人证: the disability federation's certificate register, a SQLite file read whole every day."""

from lidm import Adapter, SqlSource, codes, date

adapter = Adapter(
    contract="disability_federation.disability_certificates",
    source=SqlSource(connection="disability_db", table="cjrzxx"),
    mapping={
        "certificate_no": "cjzh",
        "id_number": "sfzh",
        "name": "xm",
        "gender": codes("xb", {"1": "male", "2": "female"}),
        "birth_date": date("csrq"),
        "disability_type": codes(
            "cjlb",
            {
                "1": "visual",
                "2": "hearing",
                "3": "speech",
                "4": "physical",
                "5": "intellectual",
                "6": "mental",
                "7": "multiple",
            },
        ),
        "disability_grade": "cjdj",
        "issue_date": date("fzrq"),
        "valid_until": date("yxqz"),
        "certificate_status": codes("zjzt", {"1": "valid", "2": "expired", "3": "cancelled"}),
        "cancellation_date": date("zxrq"),
        "cancellation_reason": codes(
            "zxyy",
            {"1": "deceased", "2": "reassessed", "3": "recovered", "4": "moved_out", "5": "voluntary", "9": "other"},
        ),
        "guardian_phone": "jhrdh",
        "district_code": "hjqx",
        "street_code": "hjjd",
        "updated_at": "gxsj",
    },
    pool="disability_federation",
)
