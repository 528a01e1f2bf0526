"""A whole-population register of N people, generated column-wise so 10M rows take seconds, not hours.

Shaped like the health commission's table `t_population` (the columns adapters/health/population.py maps):
valid 18-digit ID numbers with their GB 11643 check character, Chinese names and addresses, phones, household
numbers shared by 1-5 people, division codes of the city. A small share of rows is deliberately faulty (a wrong
check character, an unknown gender code) so the quarantine path runs as it would on real deliveries.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

COLUMNS = ("sfzh", "xm", "xb", "csrq", "hh", "lxdh", "qxdm", "jddm", "jzdz", "rkzt", "gxsj")
DISTRICTS = ["430102", "430103", "430104", "430105", "430111", "430112", "430121", "430181", "430182"]
DISTRICT_NAMES = ["芙蓉区", "天心区", "岳麓区", "开福区", "雨花区", "望城区", "长沙县", "浏阳市", "宁乡市"]
SURNAMES = list(
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘蒋蔡余杜叶程苏魏吕丁任沈姚卢"
)
GIVEN = list("伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超兰霞平刚桂英华玉萍红娥玲芬燕鹏辉建国志文斌宇浩然欣怡梓涵子轩雨桐")
STREETS = ["五一大道", "韶山路", "芙蓉中路", "人民路", "解放西路", "湘江中路", "岳麓大道", "劳动路", "万家丽路"]
WEIGHTS = np.array([7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2])
CHECK = np.array(list("10X98765432"))
EPOCH = np.datetime64("1925-01-01")
SPAN_DAYS = 36_500  # birth dates 1925-2024
BAD_SHARE = 0.001


def _digits(values: np.ndarray, width: int) -> pa.Array:
    return pc.utf8_lpad(pa.array(values.astype(np.int64)).cast(pa.string()), width, "0")


def _pick(rng: np.random.Generator, choices: list[str], n: int) -> pa.Array:
    return pc.take(pa.array(choices), pa.array(rng.integers(0, len(choices), n)))


def chunk(start: int, n: int, seed: int = 8) -> pa.Table:
    """Rows start..start+n-1 of the register; the same (start, n, seed) always gives the same rows."""
    rng = np.random.default_rng([seed, start])
    i = np.arange(start, start + n, dtype=np.int64)
    # Unique by construction: birth day, then sequence, then birthplace district.
    day = i % SPAN_DAYS
    seq = (i // SPAN_DAYS) % 1000
    place = (i // (SPAN_DAYS * 1000)) % len(DISTRICTS)
    birth = EPOCH + day.astype("timedelta64[D]")
    ymd = birth.astype("datetime64[D]").astype(str)
    ymd8 = np.char.replace(ymd, "-", "")
    first17 = pc.binary_join_element_wise(
        pc.take(pa.array(DISTRICTS), pa.array(place)), pa.array(ymd8), _digits(seq, 3), ""
    )
    digits = np.frombuffer(
        pa.array(first17).cast(pa.binary()).buffers()[2].to_pybytes()[: n * 17], dtype=np.uint8
    ).reshape(n, 17)
    check = CHECK[((digits - 48).astype(np.int64) @ WEIGHTS) % 11]
    bad = rng.random(n) < BAD_SHARE
    check = np.where(bad & (check != "0"), "0", np.where(bad, "1", check))
    sfzh = pc.binary_join_element_wise(first17, pa.array(check), "")

    one_char = rng.random(n) < 0.3
    given2 = pc.binary_join_element_wise(_pick(rng, GIVEN, n), _pick(rng, GIVEN, n), "")
    given = pc.if_else(pa.array(one_char), _pick(rng, GIVEN, n), given2)
    xm = pc.binary_join_element_wise(_pick(rng, SURNAMES, n), given, "")

    gender = np.where(rng.random(n) < 0.5, "1", "2")
    gender = np.where(rng.random(n) < BAD_SHARE / 2, "9", gender)
    home = rng.integers(0, len(DISTRICTS), n)
    qxdm = pc.take(pa.array(DISTRICTS), pa.array(home))
    jddm = pc.binary_join_element_wise(qxdm, _digits(rng.integers(1, 30, n), 3), "")
    household = i // 3  # three people a household on average
    hh_place = pc.take(pa.array(DISTRICTS), pa.array(household % len(DISTRICTS)))
    hh = pc.binary_join_element_wise(pa.scalar("H"), hh_place, _digits(household, 10), "")
    has_phone = rng.random(n) < 0.8
    phone = pc.binary_join_element_wise(
        pa.scalar("1"), _digits(rng.integers(3, 10, n), 1), _digits(rng.integers(0, 10**9, n), 9), ""
    )
    lxdh = pc.if_else(pa.array(has_phone), phone, pa.nulls(n, pa.string()))
    jzdz = pc.binary_join_element_wise(
        pa.scalar("湖南省长沙市"),
        pc.take(pa.array(DISTRICT_NAMES), pa.array(home)),
        _pick(rng, STREETS, n),
        _digits(rng.integers(1, 999, n), 1),
        pa.scalar("号"),
        _digits(rng.integers(1, 30, n), 1),
        pa.scalar("栋"),
        _digits(rng.integers(101, 3300, n), 1),
        pa.scalar("室"),
        "",
    )
    status = pc.take(pa.array(["10", "20", "30", "90"]), pa.array(rng.choice(4, n, p=[0.86, 0.1, 0.03, 0.01])))
    gxsj = pc.binary_join_element_wise(
        pa.scalar("2026-11-"), _digits(rng.integers(1, 28, n), 2), pa.scalar(" 08:00:00"), ""
    )
    return pa.table(
        {
            "sfzh": sfzh,
            "xm": xm,
            "xb": pa.array(gender),
            "csrq": pa.array(ymd8),
            "hh": hh,
            "lxdh": lxdh,
            "qxdm": qxdm,
            "jddm": jddm,
            "jzdz": jzdz,
            "rkzt": status,
            "gxsj": gxsj,
        }
    )


def chunks(rows: int, size: int = 250_000, seed: int = 8) -> Iterator[pa.Table]:
    """The register in bounded chunks: memory stays flat whatever `rows` is."""
    for start in range(0, rows, size):
        yield chunk(start, min(size, rows - start), seed)
