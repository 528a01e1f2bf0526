"""公租房实物配租或租赁补贴: the housing bureau's support records, read from its PostgreSQL housing security system."""

from lidm import Adapter, SqlSource, codes, date, fen_to_yuan

adapter = Adapter(
    contract="housing.public_rental_housing",
    source=SqlSource(connection="housing_db", table="t_gzf_bzjl", watermark="gxsj"),
    mapping={
        "record_id": "bzjlbh",
        "household_id": "jtbh",
        "id_number": "sqrsfzh",
        "name": "sqrxm",
        "support_kind": codes("bzfs", {"1": "physical_allocation", "2": "rent_subsidy"}),
        "household_size": "jtrks",
        "project_name": "xmmc",
        "address": "fwdz",
        "area": "bzmj",
        "monthly_rent": fen_to_yuan("yzj"),
        "monthly_subsidy": fen_to_yuan("ybtje"),
        "approval_date": date("shtgrq", "%Y%m%d"),
        "start_date": "qsrq",
        "end_date": "zzrq",
        "status": codes("bzzt", {"01": "active", "02": "suspended", "03": "terminated"}),
        "exit_reason": codes(
            "tcyy",
            {
                "01": "income_exceeded",
                "02": "acquired_housing",
                "03": "moved_away",
                "04": "violation",
                "05": "rent_arrears",
                "06": "deceased",
                "07": "voluntary",
                "99": "other",
            },
        ),
        "district_code": "qxdm",
        "street_code": "jddm",
        "updated_at": "gxsj",
    },
    pool="housing",
)
