"""The seed stories as input records (names from the two Fuyang news articles).

Each story is a list of (logical topic, value) in the order a department would send
them. Ids and amounts are made up; the shapes of the stories are the articles'.
"""

from __future__ import annotations

from typing import Any

from stream_app.records import with_check_character

YINHU = "330183004"  # 银湖街道 (the contract's example code)
XUKOU = "330183105"  # 胥口镇
YONGCHANG = "330183107"  # 永昌镇
DONGZHOU = "330183003"  # 东洲街道

LIN_XIAOHUA = with_check_character("33018319670305002")  # 林小花, 50, breast cancer
WANG_YUXIA = with_check_character("33018319720811004")  # 王于侠, second craniotomy
OLD_MEMBER = with_check_character("33018319440102001")  # 永昌镇青何村 old party member
TEKUN_RECIPIENT = with_check_character("33018319360920003")  # 特困 recipient who died
REVOKED_HOLDER = with_check_character("33018319800415005")  # disability certificate revoked
SEVERE_NEW = with_check_character("33018319951230006")  # level-1 certification, never applied
WRONG_DEATH = with_check_character("33018319510707007")  # a death registered by mistake
SHAO_GUOLIANG = with_check_character("33018319740618008")  # 邵国良: "老婆看完孩子看,孩子看完我看"
SHAO_WIFE = with_check_character("33018319760921009")
SHAO_CHILD = with_check_character("33018320050312010")
#: Lin Xiaohua's number with a wrong check character: bad input.
BAD_ID = LIN_XIAOHUA[:17] + ("9" if LIN_XIAOHUA[17] != "9" else "8")


def _settle(eid: str, person: str, region: str, at: str, self_pay: str, total: str, **extra: Any) -> tuple:
    value = {
        "event_id": eid,
        "person_id": person,
        "region_code": region,
        "settled_at": at,
        "total_cost": total,
        "self_pay": self_pay,
        **extra,
    }
    return ("MEDICAL_SETTLEMENTS", value)


def _enrol(eid: str, person: str, region: str, program: str, status: str, amount: str, on: str) -> tuple:
    value = {
        "event_id": eid,
        "person_id": person,
        "region_code": region,
        "program": program,
        "status": status,
        "monthly_amount": amount,
        "effective_on": on,
    }
    return ("SUBSIDY_ENROLLMENTS", value)


def stories() -> list[tuple[str, list[tuple[str, Any]]]]:
    """(title, records) per story; a record's value is a dict, or raw bytes for bad input."""
    lin = "HH-YINHU-DUMU-017"
    shao = {"household_id": "HH-YONGCHANG-QINGHE-032"}
    return [
        (
            "林小花 (Yinhu): breast cancer, 70,000 yuan self-pay in half a year",
            [
                _settle(
                    "YB-2017-0101",
                    LIN_XIAOHUA,
                    YINHU,
                    "2017-01-20T09:30:00+08:00",
                    "8000",
                    "21000",
                    household_id=lin,
                ),
                _settle(
                    "YB-2017-0214",
                    LIN_XIAOHUA,
                    YINHU,
                    "2017-02-14T10:00:00+08:00",
                    "12000.00",
                    "30000.00",
                    household_id=lin,
                ),
                _settle(
                    "YB-2017-0320",
                    LIN_XIAOHUA,
                    YINHU,
                    "2017-03-20T15:12:00+08:00",
                    "15000",
                    "41000",
                    household_id=lin,
                ),
                _settle(
                    "YB-2017-0418",
                    LIN_XIAOHUA,
                    YINHU,
                    "2017-04-18T11:00:00+08:00",
                    "10000",
                    "26000",
                    household_id=lin,
                ),
                _settle(
                    "YB-2017-0522",
                    LIN_XIAOHUA,
                    YINHU,
                    "2017-05-22T16:40:00+08:00",
                    "13000",
                    "35000",
                    household_id=lin,
                ),
                _settle(
                    "YB-2017-0626",
                    LIN_XIAOHUA,
                    YINHU,
                    "2017-06-26T08:05:00+08:00",
                    "12000",
                    "33000",
                    household_id=lin,
                ),
                _enrol("MZ-DB-2017-0811", LIN_XIAOHUA, YINHU, "dibao", "active", "1836", "2017-08-01"),
            ],
        ),
        (
            "王于侠 (Xukou): second craniotomy, 80,000 yuan self-pay at once (sent twice)",
            [
                _settle("YB-2017-0308-A", WANG_YUXIA, XUKOU, "2017-03-08T14:00:00+08:00", "80000", "190000"),
                _settle("YB-2017-0308-A", WANG_YUXIA, XUKOU, "2017-03-08T14:00:00+08:00", "80000", "190000"),
            ],
        ),
        (
            "Old party member (Yongchang): over 50,000 yuan in a year, one bill reversed",
            [
                _settle("YB-2016-1103", OLD_MEMBER, YONGCHANG, "2016-11-03T09:00:00+08:00", "9000", "20000"),
                _settle("YB-2017-0115", OLD_MEMBER, YONGCHANG, "2017-01-15T09:00:00+08:00", "16000", "40000"),
                _settle("YB-2017-0409", OLD_MEMBER, YONGCHANG, "2017-04-09T09:00:00+08:00", "6500", "15000"),
                _settle(
                    "YB-2017-0409-R",
                    OLD_MEMBER,
                    YONGCHANG,
                    "2017-04-10T09:00:00+08:00",
                    "0",
                    "0",
                    kind="reversal",
                    reverses="YB-2017-0409",
                ),
                _settle("YB-2017-0612", OLD_MEMBER, YONGCHANG, "2017-06-12T09:00:00+08:00", "12000", "30000"),
                _settle("YB-2017-0930", OLD_MEMBER, YONGCHANG, "2017-09-30T09:00:00+08:00", "14000", "36000"),
            ],
        ),
        (
            "特困 recipient (Dongzhou) dies on 2017-09-10; his card pays a bill in November; the death is"
            " registered in January: payment stops from October, 4 months (4,800 yuan) to recover,"
            " and the bill after death is flagged",
            [
                _enrol("MZ-TK-2015-0420", TEKUN_RECIPIENT, DONGZHOU, "tekun", "active", "1200", "2015-05-01"),
                _settle(
                    "YB-2017-1120",
                    TEKUN_RECIPIENT,
                    DONGZHOU,
                    "2017-11-20T10:15:00+08:00",
                    "236.50",
                    "980.00",
                    service_on="2017-11-20",
                ),
                (
                    "DEATH_REGISTRATIONS",
                    {
                        "event_id": "GA-SW-2018-0115",
                        "person_id": TEKUN_RECIPIENT,
                        "region_code": DONGZHOU,
                        "died_on": "2017-09-10",
                        "registered_at": "2018-01-15T10:00:00+08:00",
                    },
                ),
            ],
        ),
        (
            "Disability certificate revoked (Xukou): both disability subsidies stop",
            [
                _enrol(
                    "MZ-CJ-2016-0101",
                    REVOKED_HOLDER,
                    XUKOU,
                    "disability_living",
                    "active",
                    "300",
                    "2016-01-01",
                ),
                _enrol(
                    "MZ-CH-2016-0101",
                    REVOKED_HOLDER,
                    XUKOU,
                    "disability_nursing",
                    "active",
                    "150",
                    "2016-01-01",
                ),
                (
                    "DISABILITY_REGISTRATIONS",
                    {
                        "event_id": "CL-2017-1020",
                        "person_id": REVOKED_HOLDER,
                        "region_code": XUKOU,
                        "status": "revoked",
                        "effective_on": "2017-10-20",
                    },
                ),
            ],
        ),
        (
            "Level-1 certification (Yongchang), no nursing subsidy: reach out (应保尽保)",
            [
                (
                    "DISABILITY_REGISTRATIONS",
                    {
                        "event_id": "CL-2017-0705",
                        "person_id": SEVERE_NEW,
                        "region_code": YONGCHANG,
                        "status": "certified",
                        "level": 1,
                        "category": "physical",
                        "effective_on": "2017-07-05",
                    },
                ),
            ],
        ),
        (
            "A death registered by mistake (Yinhu), then withdrawn: the dibao payment resumes",
            [
                _enrol("MZ-DB-2014-0301", WRONG_DEATH, YINHU, "dibao", "active", "760", "2014-03-01"),
                (
                    "DEATH_REGISTRATIONS",
                    {
                        "event_id": "GA-SW-2017-1101",
                        "person_id": WRONG_DEATH,
                        "region_code": YINHU,
                        "died_on": "2017-10-30",
                        "registered_at": "2017-11-01T09:00:00+08:00",
                    },
                ),
                (
                    "DEATH_REGISTRATIONS",
                    {
                        "event_id": "GA-SW-2017-1103-W",
                        "person_id": WRONG_DEATH,
                        "region_code": YINHU,
                        "registered_at": "2017-11-03T09:00:00+08:00",
                        "status": "withdrawn",
                        "withdraws": "GA-SW-2017-1101",
                    },
                ),
            ],
        ),
        (
            "邵国良's family (Yongchang): three members ill one after another, none over a tier alone",
            # R7: the wife 28,000, the child 14,000, Shao 29,000 yuan self-pay; the household
            # crosses 30,000 with the child's bill (42,000: R8 suggests 0.5 x 32,000 = 16,000)
            # and 50,000 with Shao's (71,000: 0.5 x 61,000 = 30,500, capped at 30,000).
            [
                _settle(
                    "YB-2019-0302",
                    SHAO_WIFE,
                    YONGCHANG,
                    "2019-03-02T09:00:00+08:00",
                    "16000",
                    "52000",
                    **shao,
                ),
                _settle(
                    "YB-2019-0520",
                    SHAO_WIFE,
                    YONGCHANG,
                    "2019-05-20T09:00:00+08:00",
                    "12000",
                    "35000",
                    **shao,
                ),
                _settle(
                    "YB-2019-0815",
                    SHAO_CHILD,
                    YONGCHANG,
                    "2019-08-15T09:00:00+08:00",
                    "14000",
                    "40000",
                    **shao,
                ),
                _settle(
                    "YB-2019-1108",
                    SHAO_GUOLIANG,
                    YONGCHANG,
                    "2019-11-08T09:00:00+08:00",
                    "29000",
                    "88000",
                    **shao,
                ),
            ],
        ),
        (
            "Bad input: a wrong check character and a truncated record go to the dead letters",
            [
                _settle("YB-BAD-1", BAD_ID, YINHU, "2017-07-01T09:00:00+08:00", "100", "200"),
                ("MEDICAL_SETTLEMENTS", b'{"event_id": "YB-BAD-2", "person_id": '),
            ],
        ),
    ]
