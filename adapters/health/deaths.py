"""死亡人员信息: the health commission's death registrations, read incrementally from its database."""

from lidm import GB_GENDER, Adapter, SqlSource, codes, date

adapter = Adapter(
    contract="health.deaths",
    source=SqlSource(connection="health_db", table="t_death_register", watermark="gxsj"),
    mapping={
        "id_number": "sfzh",
        "name": "xm",
        "gender": codes("xb", GB_GENDER),
        "death_date": date("swrq", "%Y%m%d"),
        "death_place": codes(
            "swdd",
            {
                "1": "medical_institution",
                "2": "en_route",
                "3": "home",
                "4": "care_institution",
                "5": "other",
                "9": "unknown",
            },
        ),
        "cause_category": codes(
            "gbsylb",
            {
                "01": "infectious",
                "02": "neoplasm",
                "03": "cardio_cerebrovascular",
                "04": "respiratory",
                "05": "other_disease",
                "06": "injury",
                "99": "unknown",
            },
        ),
        "death_certificate_no": "swzmbh",
        "reporting_institution": "bgdw",
        "report_date": date("bgrq", "%Y%m%d"),
        "data_source": codes("xxly", {"1": "medical_certificate", "2": "hukou_cancellation", "3": "cremation"}),
        "district_code": "qxdm",
        "street_code": "jddm",
        "updated_at": "gxsj",
    },
    pool="health",
)
