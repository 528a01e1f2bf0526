"""残疾人证: the disability federation's certificate register, a SQLite file read whole every day."""

from lidm import GB_DISABILITY_TYPE, GB_GENDER, Adapter, SqlSource, codes, date

adapter = Adapter(
    contract="disability_federation.disability_certificates",
    source=SqlSource(connection="disability_db", table="cjrzxx"),
    mapping={
        "certificate_no": "cjzh",
        "id_number": "sfzh",
        "name": "xm",
        "gender": codes("xb", GB_GENDER),
        "birth_date": date("csrq"),
        "disability_type": codes("cjlb", GB_DISABILITY_TYPE),
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
