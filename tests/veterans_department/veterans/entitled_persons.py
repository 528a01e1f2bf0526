"""优抚对象: the veterans affairs bureau's register of entitled persons, a SQLite table read whole every day."""

from lidm import Adapter, SqlSource, codes, date, fen_to_yuan

adapter = Adapter(
    contract="veterans.entitled_persons",
    source=SqlSource(connection="veterans_db", table="t_yfdx"),
    mapping={
        "id_number": "sfzh",
        "name": "xm",
        "phone": "lxdh",
        "category": codes("yflb", {"11": "veteran", "12": "disabled_serviceman", "21": "martyr_family", "99": "other"}),
        "disability_grade": "cjdj",
        "monthly_subsidy": fen_to_yuan("fxje_fen"),
        "approval_date": date("rdrq", "%Y%m%d"),
        "status": codes("zt", {"1": "active", "2": "suspended", "3": "terminated"}),
        "district_code": "qxdm",
        "street_code": "jddm",
        "updated_at": "gxsj",
    },
    ignore=("bz",),
    pool="veterans",
)
