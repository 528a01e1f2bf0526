"""应退 and 渐退 in the synthetic city: roster members who may no longer qualify, members who left and are still
watched, and a household holding two categories at once.

The seed (长民发〔2025〕22号) says it in three sentences, quoted beside each cohort below:
二(三) "做到应救尽救、应退尽退", 二(四) "发现可能不再符合救助条件的，及时按规定程序终止救助", and
三(一) "对不再符合救助条件
需要退出的，根据实际情况分类落实渐退政策；对已退出的，要继续做好动态监测". Departments' generators read these cohorts
(careers: the new jobs and the registrations; pensions: the pension start) and ``lidm_samples.planted`` restates
the rules over them.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from datetime import datetime, time, timedelta
from decimal import Decimal

from lidm_samples.people import REFERENCE_DATE, Person, RosterMember
from lidm_samples.world import PLANTED, World, age_on

NEW_JOB_DAYS = 180  # roster_newly_employed: a job that started in the last half year
PENSION_DAYS = 365  # roster_pension_started: a pension that began in the last year
WATCH_DAYS = (
    365  # left_roster_in_hardship: how long people who left are watched (a placeholder: the seed names no period)
)
GRADUAL_EXIT_DAYS = 180  # 渐退: still paid for a while after the cause of exit is found (the end date, in the future)

# Cohorts whose people are never picked here: the planted ones (their rows are another rule's case) and the dead.
_BUSY = ("deceased", "relocated_two_districts", "high_out_of_pocket")


def plant_leavers(
    world: World,
    fit: Callable[[Sequence[Person]], list[Person]],
    pick: Callable[[random.Random, Sequence[Person], float, int], list[Person]],
) -> None:
    """Choose the cohorts and change their roster rows (status, exit reason, categories) where the case says so."""
    rng = world.rng("planted:leavers")
    busy = {p.id_number for c in (*_BUSY, *PLANTED) for p in world.cohorts.get(c, [])}
    active = [m for m in world.roster if m.status == "active" and m.person.id_number not in busy]
    households: dict[str, list[RosterMember]] = {}
    for m in world.roster:
        households.setdefault(m.household_id, []).append(m)
    people = fit([m.person for m in active])  # person by person: a small city's households all carry some case
    working_now = {p.id_number for c in ("employed", "unemployed", "pensioners") for p in world.cohorts[c]}
    unemployed = {p.id_number for p in world.cohorts["unemployed"]}
    by_id = {m.person.id_number: m for m in world.roster if m.person.id_number not in busy}
    taken: set[str] = set()

    def take(name: str, pool: Sequence[Person], at_least: int) -> list[RosterMember]:
        fresh = sorted((p for p in pool if p.id_number not in taken), key=lambda p: p.id_number)
        chosen = pick(rng, fresh, 0.0, at_least)
        taken.update(p.id_number for p in chosen)
        world.cohorts[name] = sorted(chosen, key=lambda p: p.id_number)
        return [by_id[p.id_number] for p in chosen]

    def add(cohort: str, members: Sequence[RosterMember]) -> None:
        have = {p.id_number for p in world.cohorts[cohort]}
        world.cohorts[cohort] = sorted(
            world.cohorts[cohort] + [m.person for m in members if m.person.id_number not in have],
            key=lambda p: p.id_number,
        )

    def leave(m: RosterMember, status: str, reason: str, days: int) -> None:
        m.status, m.exit_reason = status, reason
        m.termination_date = REFERENCE_DATE + timedelta(days=days)
        m.approval_date = min(m.approval_date, m.termination_date - timedelta(days=400))

    # DOMAIN "A person can hold several categories at once (e.g. dibao and return-to-poverty monitoring)"
    heads = [
        p for p in people if by_id[p.id_number].relation_to_head == "head" and by_id[p.id_number].category == "dibao"
    ]
    for head in take("dibao_and_return_risk", heads, 1):
        for m in households[head.household_id]:
            m.extra_categories = ("return_risk",)
        add("return_risk", [head])

    working = [p for p in people if 18 <= age_on(p) <= 59 and p.id_number not in working_now]
    # 二(三) "动态掌握低收入人口就业状况…变化情况": a new job with a wage record may end the need (应退)
    add("employed", take("newly_employed", working, 2))
    # 三(一) "对不再符合救助条件需要退出的，根据实际情况分类落实渐退政策": already in 渐退 for that job (near miss)
    exiting = take("exiting_employed", working, 1)
    for m in exiting:
        leave(m, "gradual_exit", "employed", GRADUAL_EXIT_DAYS)
    add("employed", exiting)

    # 三(一) "对已退出的，要继续做好动态监测": left this year as income improved, now registered unemployed
    # active members with no job, or members who left already (registered unemployed or not): their exit is redated
    ended = fit([m.person for m in world.roster if m.status == "terminated" and m.person.id_number not in busy])
    jobless = [p for p in people if 18 <= age_on(p) <= 62 and p.id_number not in working_now] + [
        p for p in ended if 18 <= age_on(p) <= 64 and p.id_number not in working_now - unemployed
    ]
    for m in take("left_roster_unemployed", jobless, 2):
        leave(m, "terminated", "income_improved", -90)
        m.monthly_amount = Decimal("0.00")
        add("unemployed", [m])
    for m in take("left_roster_long_ago", jobless, 1):  # left three years ago: beyond the watch period (near miss)
        leave(m, "terminated", "income_improved", -3 * 365)
        add("unemployed", [m])

    # 二(三) "动态掌握低收入人口…家庭支出、困难情形等变化情况": a pension begun (enterprise scheme)
    elders = [p for p in people if 61 <= age_on(p) <= 85]
    add("pensioners", take("pension_started", elders, 2))

    # 三(二)6 "法律援助机构对最低生活保障对象、特困人员…防止返贫监测对象…依照《中华人民共和国法律援助法》的规定，
    # 提供法律援助服务": an adult member's application refused this year; one granted (a near miss)
    adults = [p for p in people if age_on(p) >= 18]
    take("legal_aid_refused", adults, 2)
    take("legal_aid_granted", adults, 1)

    # 三(五) "对符合条件的最低生活保障对象、特困人员…给予…殡葬…费用减免": a dibao or tekun member died last week, on no
    # list but work (whose records follow the death register)
    lists = {c: g for c, g in world.cohorts.items() if c not in ("employed", "unemployed")}
    anywhere = {p.id_number for group in lists.values() for p in group}
    quiet = [p for p in people if age_on(p) >= 18 and p.id_number not in anywhere]
    for m in take("died_on_dibao", [p for p in quiet if {"dibao", "tekun"} & set(by_id[p.id_number].categories)], 2):
        m.person.residence_status = "deceased"
        m.person.updated_at = datetime.combine(REFERENCE_DATE - timedelta(days=10), time(9))
        add("deceased", [m])

    # 二(四) "发现可能不再符合救助条件的，及时按规定程序终止救助": hukou moved out of the city
    for m in take("moved_out_on_roster", people, 2):
        m.person.residence_status = "moved_out"
    for m in take("moved_out_left_roster", people, 1):  # ended for it already (near miss)
        m.person.residence_status = "moved_out"
        leave(m, "terminated", "moved_out", -30)
