"""孤儿和事实无人抚养儿童: civil affairs' child welfare register, a PostgreSQL table (allowance in fen)."""

from lidm import GB_GENDER, Adapter, SqlSource, codes, date, fen_to_yuan

adapter = Adapter(
    contract="civil_affairs.children_in_need",
    source=SqlSource(connection="civil_affairs_db", table="t_kjet_gesw"),
    mapping={
        "id_number": "sfzh",
        "name": "xm",
        "gender": codes("xb", GB_GENDER),
        "birth_date": "csrq",
        "child_kind": codes("etlb", {"01": "orphan", "02": "de_facto_unsupported"}),
        "placement": codes("yyfs", {"1": "institution", "2": "family"}),
        "institution_name": "yyjgmc",
        "guardian_relation": codes(
            "jhrgx",
            {"10": "grandparent", "20": "sibling", "30": "other_relative", "40": "institution", "90": "other"},
        ),
        "guardian_phone": "jhrlxdh",
        "monthly_amount": fen_to_yuan("yfbz_fen"),
        "approval_date": date("rdrq", "%Y%m%d"),
        "termination_date": date("zzrq", "%Y%m%d"),
        "termination_reason": codes(
            "zzyy",
            {
                "01": "adult",
                "02": "adopted",
                "03": "parent_resumed",
                "04": "deceased",
                "05": "moved_out",
                "99": "other",
            },
        ),
        "status": codes("bzzt", {"1": "active", "2": "suspended", "3": "terminated"}),
        "district_code": "qxdm",
        "street_code": "jddm",
        "updated_at": "gxsj",
    },
    pool="civil_affairs",
)
