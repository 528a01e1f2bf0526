"""全员人口信息: the health commission's whole-population register, read from its database."""

from lidm import GB_GENDER, Adapter, SqlSource, codes, date

adapter = Adapter(
    contract="health.population",
    source=SqlSource(connection="health_db", table="t_population"),
    mapping={
        "id_number": "sfzh",
        "name": "xm",
        "gender": codes("xb", GB_GENDER),
        "birth_date": date("csrq", "%Y%m%d"),
        "household_id": "hh",
        "phone": "lxdh",
        "district_code": "qxdm",
        "street_code": "jddm",
        "address": "jzdz",
        "residence_status": codes("rkzt", {"10": "registered", "20": "resident", "30": "moved_out", "90": "deceased"}),
        "updated_at": "gxsj",
    },
    pool="health",
)
