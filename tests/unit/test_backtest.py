"""stream-app backtest: kcat -J lines in, the Processor's outputs out, in ts order."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from stream_app import backtest, cli, synthetic
from stream_app.processing import DictState, Processor, stamped
from stream_app.records import encode
from stream_app.settings import SettingsError, load
from tests.builders import (
    REGION,
    death_value,
    disability_value,
    enrollment_value,
    person,
    settlement_value,
)

SETTINGS = load({})
T = {logical: SETTINGS.topic(logical) for logical in SETTINGS.topics}
A = person(501)
B = person(502)
D = person(504)


def line(logical: str, value: Any, ts: int, offset: int = 0, key: Any = "auto", partition: int = 0) -> str:
    payload = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    if key == "auto":
        key = value.get("person_id") if isinstance(value, dict) else None
    return json.dumps(
        {
            "topic": T.get(logical, logical),
            "partition": partition,
            "offset": offset,
            "tstype": "create",
            "ts": ts,
            "broker": 1,
            "key": key,
            "payload": payload,
        },
        ensure_ascii=False,
    )


def write(path: Path, lines: list[str]) -> str:
    path.write_text("".join(f"{text}\n" for text in lines), encoding="utf-8")
    return str(path)


def run(
    files: list[str], settings=SETTINGS, stdin: bytes = b"", **options: Any
) -> tuple[list[dict], str, backtest.Stats]:
    out, err = io.BytesIO(), io.StringIO()
    stats = backtest.run(settings, backtest.Options(files, **options), out, err, stdin=io.BytesIO(stdin))
    backtest.report(stats, err)
    if options.get("summary"):
        return [], out.getvalue().decode(), stats
    return list(backtest.iter_output_lines(out.getvalue())), err.getvalue(), stats


def bill(eid: str, who: str, amount: str, day: str = "2017-03-01") -> dict[str, Any]:
    return settlement_value(eid, who, f"{day}T09:00:00+08:00", amount)


def warning_causes(outputs: list[dict]) -> list[str]:
    return [o["payload"]["caused_by"] for o in outputs if o["topic"] == T["ASSISTANCE_WARNINGS"]]


# ---------------------------------------------------------------------------
# Order


def test_backtest_takes_records_in_ts_order_not_file_order(tmp_path):
    # 20,000 then 15,000 crosses 30,000 on the second record processed: its cause names the order.
    path = write(
        tmp_path / "in.jsonl",
        [
            line("MEDICAL_SETTLEMENTS", bill("late", A, "15000"), ts=2000, offset=1),
            line("MEDICAL_SETTLEMENTS", bill("early", A, "20000"), ts=1000, offset=0),
        ],
    )
    outputs, _, _ = run([path])
    assert warning_causes(outputs) == ["late"]


def test_backtest_breaks_ts_ties_in_file_order(tmp_path):
    path = write(
        tmp_path / "in.jsonl",
        [
            line("MEDICAL_SETTLEMENTS", bill("first", A, "15000"), ts=1000),
            line("MEDICAL_SETTLEMENTS", bill("second", A, "20000"), ts=1000),
        ],
    )
    outputs, _, _ = run([path])
    assert warning_causes(outputs) == ["second"]


def test_backtest_merges_several_files_stably(tmp_path):
    one = write(tmp_path / "one.jsonl", [line("MEDICAL_SETTLEMENTS", bill("x", A, "15000"), ts=1000)])
    two = write(
        tmp_path / "two.jsonl",
        [
            line("MEDICAL_SETTLEMENTS", bill("y", A, "20000"), ts=1000),
            line("MEDICAL_SETTLEMENTS", bill("z", B, "40000"), ts=500),
        ],
    )
    outputs, _, stats = run([one, two])
    assert warning_causes(outputs) == ["z", "y"]  # ts 500 first; the tie at 1000 in argument order
    outputs, _, _ = run([two, one])
    assert warning_causes(outputs) == ["z", "x"]
    assert (stats.files, stats.records) == (2, 3)


def test_backtest_reads_stdin_as_dash(tmp_path):
    data = "\n".join(
        [
            line("MEDICAL_SETTLEMENTS", bill("s1", A, "20000"), ts=1),
            line("MEDICAL_SETTLEMENTS", bill("s2", A, "15000"), ts=2),
        ]
    ).encode()
    other = write(tmp_path / "b.jsonl", [line("MEDICAL_SETTLEMENTS", bill("s3", B, "30000"), ts=3)])
    outputs, _, _ = run(["-", other], stdin=data)
    assert warning_causes(outputs) == ["s2", "s3"]


# ---------------------------------------------------------------------------
# Output form and identity with the processor


def test_backtest_outputs_are_kcat_lines_stamped_with_the_input_ts(tmp_path):
    path = write(
        tmp_path / "in.jsonl", [line("MEDICAL_SETTLEMENTS", bill("s1", A, "30000"), ts=1489022400123)]
    )
    [out], _, _ = run([path])
    assert set(out) == {"topic", "key", "payload", "ts"}
    assert (out["topic"], out["key"], out["ts"]) == (T["ASSISTANCE_WARNINGS"], A, 1489022400123)
    assert out["payload"]["emitted_at"] == "2017-03-09T01:20:00.123+00:00"
    assert out["payload"]["tier"] == "30000.00"


def test_backtest_output_is_byte_identical_run_to_run(tmp_path):
    path = tmp_path / "feed.jsonl"
    synthetic.write(str(path), 3000, persons=300, seed=7)
    first, second = io.BytesIO(), io.BytesIO()
    for out in (first, second):
        backtest.run(SETTINGS, backtest.Options([str(path)]), out, io.StringIO())
    assert first.getvalue() == second.getvalue() and first.getvalue()


def processor_outputs(path: Path) -> list[tuple[str, str | None, bytes, int]]:
    """The pure Processor over the same lines in ts order (stable), stamped as the backtest does."""
    lines = [json.loads(text) for text in path.read_text(encoding="utf-8").splitlines()]
    lines.sort(key=lambda obj: obj["ts"])
    processor = Processor(SETTINGS, DictState(), DictState())
    logical = {name: lg for lg, name in SETTINGS.topics.items()}
    expected = []
    for obj in lines:
        key = obj["key"].encode() if obj["key"] is not None else None
        processed = processor.process(
            obj["topic"], obj["partition"], obj["offset"], key, obj["payload"].encode()
        )
        now = backtest.stamp_text(obj["ts"])
        # R7's re-keyed records are not printed: the household side's outputs are, after.
        for item in processor.with_households(processed):
            assert logical[obj["topic"]]  # an input topic
            expected.append(
                (
                    SETTINGS.topic(item.topic),
                    item.key.decode() if item.key is not None else None,
                    encode(stamped(item.value, now)),
                    obj["ts"],
                )
            )
    return expected


def test_backtest_outputs_equal_the_processors_over_a_generated_feed_ids_included(tmp_path):
    path = tmp_path / "feed.jsonl"
    synthetic.write(str(path), 20_000, persons=2_000, seed=3)
    out = io.BytesIO()
    backtest.run(SETTINGS, backtest.Options([str(path)]), out, io.StringIO())
    got = [
        (obj["topic"], obj["key"], obj["payload"].encode(), obj["ts"])
        for obj in map(json.loads, out.getvalue().splitlines())
    ]
    expected = processor_outputs(path)
    assert got == expected
    kinds = {json.loads(payload).get("rule") or json.loads(payload).get("reason") for _, _, payload, _ in got}
    assert {
        "MEDICAL_SELF_PAY",
        "HOUSEHOLD_SELF_PAY",
        "DUPLICATE_ASSISTANCE",
        "DEATH",
        "DISABILITY_REVOKED",
    } <= kinds
    assert any(topic == T["DEADLETTER"] for topic, *_ in got)


def test_backtest_dead_letters_equal_the_processors_with_the_files_position(tmp_path):
    bad_json = '{"event_id": "x1", "person_id": '
    wrong_key = enrollment_value("e1", A, "dibao", "active", "2017-01-01")
    bad_check = enrollment_value(
        "e2", A[:17] + ("0" if A[17] != "0" else "1"), "dibao", "active", "2017-01-01"
    )
    records = [
        ("MEDICAL_SETTLEMENTS", bad_json, A, 3, 41),
        ("SUBSIDY_ENROLLMENTS", wrong_key, B, 1, 7),
        ("SUBSIDY_ENROLLMENTS", bad_check, A, 2, 8),
        ("DEATH_REGISTRATIONS", None, A, 0, 0),  # a tombstone
    ]
    lines = []
    for n, (logical, value, key, partition, offset) in enumerate(records):
        text = json.loads(
            line(
                logical,
                value if value is not None else "x",
                ts=100 + n,
                offset=offset,
                key=key,
                partition=partition,
            )
        )
        if value is None:
            text["payload"] = None
        lines.append(json.dumps(text))
    path = write(tmp_path / "in.jsonl", lines)
    outputs, _, _ = run([path])

    processor = Processor(SETTINGS, DictState(), DictState())
    expected = []
    for n, (logical, value, key, partition, offset) in enumerate(records):
        raw = None if value is None else (value if isinstance(value, str) else json.dumps(value)).encode()
        [letter] = processor.process(T[logical], partition, offset, key.encode(), raw).emits
        expected.append(json.loads(encode(stamped(letter.value, backtest.stamp_text(100 + n)))))
    assert [o["payload"] for o in outputs] == expected
    assert [o["payload"]["error_class"] for o in outputs] == ["json", "key", "schema", "json"]
    assert [(o["payload"]["topic"], o["payload"]["partition"], o["payload"]["offset"]) for o in outputs] == [
        (T[logical], partition, offset) for logical, _, _, partition, offset in records
    ]
    assert all(o["topic"] == T["DEADLETTER"] for o in outputs)


def test_backtest_takes_an_object_payload_as_its_exact_text(tmp_path):
    value = bill("s1", A, "30000")
    obj = json.loads(line("MEDICAL_SETTLEMENTS", value, ts=1))
    obj["payload"] = value  # as `stream-app tail` prints it
    [out], _, _ = run([write(tmp_path / "in.jsonl", [json.dumps(obj)])])
    assert out["payload"]["caused_by"] == "s1"


# ---------------------------------------------------------------------------
# Lines that are not input records


def test_backtest_skips_and_counts_unknown_topics_and_unparseable_lines(tmp_path):
    path = write(
        tmp_path / "in.jsonl",
        [
            line("MEDICAL_SETTLEMENTS", bill("s1", A, "20000"), ts=1),
            line("payment.stops.v1", {"stop_id": "x"}, ts=2, key="k"),
            line("someone.elses.topic", "{}", ts=3, key=None),
            line("someone.elses.topic", "{}", ts=4, key=None),
            "not json at all",
            '{"topic": "medical.settlements.v1", "payload": "{}"}',  # no partition, offset, ts
            '["an", "array"]',
            "",
            line("MEDICAL_SETTLEMENTS", bill("s2", A, "15000"), ts=5),
        ],
    )
    outputs, err, stats = run([path])
    assert warning_causes(outputs) == ["s2"]
    assert stats.unknown_topics == {"payment.stops.v1": 1, "someone.elses.topic": 2}
    assert (stats.unparseable, stats.records, stats.lines) == (3, 2, 9)
    assert "skipped 3 line(s) of topics that are not input topics" in err
    assert "payment.stops.v1 (1), someone.elses.topic (2)" in err
    assert "skipped 3 unparseable line(s)" in err and f"{path}:5, {path}:6, {path}:7" in err


def test_backtest_uses_the_topic_names_of_the_settings(tmp_path):
    settings = load(
        {"STREAM_APP_TOPIC_MEDICAL_SETTLEMENTS": "bills", "STREAM_APP_TOPIC_ASSISTANCE_WARNINGS": "w"}
    )
    obj = json.loads(line("MEDICAL_SETTLEMENTS", bill("s1", A, "30000"), ts=1))
    default = dict(obj)
    obj["topic"] = "bills"
    path = write(tmp_path / "in.jsonl", [json.dumps(obj), json.dumps(default)])
    outputs, _, stats = run([path], settings=settings)
    assert [(o["topic"], o["payload"]["caused_by"]) for o in outputs] == [("w", "s1")]
    assert stats.unknown_topics == {T["MEDICAL_SETTLEMENTS"]: 1}


# ---------------------------------------------------------------------------
# Settings and flags


def test_flags_override_settings_and_bad_flags_name_themselves():
    base = load({"STREAM_APP_MEDICAL_TIERS": "10000", "STREAM_APP_POST_DEATH_GRACE_DAYS": "5"})
    settings = backtest.apply_flags(
        base,
        medical_tiers="20000,40000",
        household_tiers="1000",
        assistance_standard="0:1:100",
        post_death_grace_days="3",
        exclusive_programs="a:b",
    )
    rules = settings.rules
    assert rules.medical_tiers_fen == (2_000_000, 4_000_000)
    assert rules.household_tiers_fen == (100_000,)
    assert (rules.standard.deductible_fen, rules.standard.cap_fen) == (0, 10_000)
    assert (rules.post_death_grace_days, rules.exclusive_programs) == (3, (("a", "b"),))
    assert backtest.apply_flags(base).rules == base.rules  # no flag: the settings stand
    for flag, text in [
        ("medical_tiers", "lots"),
        ("household_tiers", "-5"),
        ("assistance_standard", "1:2"),
        ("post_death_grace_days", "two"),
        ("post_death_grace_days", "-1"),
        ("exclusive_programs", "dibao"),
    ]:
        with pytest.raises(SettingsError, match=f"--{flag.replace('_', '-')}"):
            backtest.apply_flags(base, **{flag: text})


def cli_run(
    monkeypatch, capsysbinary, argv: list[str], env: dict[str, str] | None = None
) -> tuple[int, bytes, str]:
    for name in list(__import__("os").environ):
        if name.startswith("STREAM_APP_"):
            monkeypatch.delenv(name)
    for name, value in (env or {}).items():
        monkeypatch.setenv(name, value)
    code = cli.main(["backtest", *argv])
    captured = capsysbinary.readouterr()
    return code, captured.out, captured.err.decode()


def test_cli_medical_tiers_flag_overrides_the_environment(tmp_path, monkeypatch, capsysbinary):
    path = write(tmp_path / "in.jsonl", [line("MEDICAL_SETTLEMENTS", bill("s1", A, "25000"), ts=1)])
    env = {"STREAM_APP_MEDICAL_TIERS": "30000,50000"}
    code, out, err = cli_run(monkeypatch, capsysbinary, [path], env)
    assert (code, out) == (0, b"")
    assert "1 records from 1 file(s)" in err and "records/s" in err
    code, out, _ = cli_run(monkeypatch, capsysbinary, [path, "--medical-tiers", "20000,40000"], env)
    [warning] = list(backtest.iter_output_lines(out))
    assert code == 0 and warning["payload"]["tier"] == "20000.00"
    code, out, _ = cli_run(monkeypatch, capsysbinary, [path], {"STREAM_APP_MEDICAL_TIERS": "25000"})
    assert code == 0 and len(out.splitlines()) == 1  # the environment applies without a flag


def test_cli_bad_flag_exits_2_naming_it(tmp_path, monkeypatch, capsysbinary):
    path = write(tmp_path / "in.jsonl", [])
    code, out, err = cli_run(monkeypatch, capsysbinary, [path, "--post-death-grace-days", "soon"])
    assert (code, out) == (2, b"")
    assert "--post-death-grace-days" in err and "'soon'" in err


def test_cli_bad_setting_exits_2_naming_the_variable(tmp_path, monkeypatch, capsysbinary):
    path = write(tmp_path / "in.jsonl", [])
    code, _, err = cli_run(monkeypatch, capsysbinary, [path], {"STREAM_APP_EXCLUSIVE_PROGRAMS": "dibao"})
    assert code == 2 and "STREAM_APP_EXCLUSIVE_PROGRAMS" in err


def test_cli_missing_file_exits_1_naming_it(tmp_path, monkeypatch, capsysbinary):
    code, out, err = cli_run(monkeypatch, capsysbinary, [str(tmp_path / "nope.jsonl")])
    assert (code, out) == (1, b"")
    assert "nope.jsonl" in err and err.count("\n") == 1


def test_cli_without_files_is_a_usage_error(monkeypatch, capsysbinary):
    with pytest.raises(SystemExit) as exc:
        cli_run(monkeypatch, capsysbinary, [])
    assert exc.value.code == 2


# ---------------------------------------------------------------------------
# Summary, plot, progress


def status_and_bills(tmp_path: Path) -> str:
    c = person(503)
    lines = [
        line("SUBSIDY_ENROLLMENTS", enrollment_value("e1", c, "tekun", "active", "2016-01-01"), ts=1),
        line("SUBSIDY_ENROLLMENTS", enrollment_value("e2", c, "dibao", "active", "2016-02-01"), ts=2),
        line("SUBSIDY_ENROLLMENTS", enrollment_value("e3", D, "dibao", "active", "2016-01-01"), ts=3),
        line("DEATH_REGISTRATIONS", death_value("d1", D, "2017-04-10"), ts=3),
        line("DISABILITY_REGISTRATIONS", disability_value("r1", B, "certified", "2017-05-02", level=1), ts=4),
        line("MEDICAL_SETTLEMENTS", bill("s1", A, "31000", day="2017-03-01"), ts=5),
        line("MEDICAL_SETTLEMENTS", bill("s2", A, "20000", day="2017-04-01"), ts=6),
        line("MEDICAL_SETTLEMENTS", bill("s3", B, "35000", day="2017-04-20"), ts=7),
        line("MEDICAL_SETTLEMENTS", "{oops", ts=8, key=A),
    ]
    return write(tmp_path / "in.jsonl", lines)


def test_summary_counts_per_rule_tier_and_reason_by_month_and_region(tmp_path):
    _, text, stats = run([status_and_bills(tmp_path)], summary=True)
    assert "by month" in text and "by region (region_code)" in text
    for column in (
        "MEDICAL_SELF_PAY 30000.00",
        "MEDICAL_SELF_PAY 50000.00",
        "DUPLICATE_ASSISTANCE",
        "DISABILITY_NURSING_ELIGIBLE",
        "stop DEATH",
        "dead letter json",
    ):
        assert column in text, column
    month_rows = {row.split("│")[1].strip(): row for row in text.splitlines() if row.count("│") > 3}
    # Medical warnings by occurred_at month, stops by effective_on (the month after the death).
    assert {"2016-02", "2017-03", "2017-04", "2017-05"} <= set(month_rows)
    assert REGION in text
    assert stats.outputs == {"ASSISTANCE_WARNINGS": 5, "PAYMENT_STOPS": 1, "DEADLETTER": 1}
    assert '"topic"' not in text  # a summary instead of the records


def test_summary_from_the_cli_has_no_records(tmp_path, monkeypatch, capsysbinary):
    code, out, err = cli_run(monkeypatch, capsysbinary, [status_and_bills(tmp_path), "--summary"])
    assert code == 0 and b"by month" in out and b'"payload"' not in out
    assert "records/s" in err


def test_plot_writes_a_png_of_warnings_per_month(tmp_path):
    pytest.importorskip("matplotlib")
    png = tmp_path / "warnings.png"
    outputs, _, _ = run([status_and_bills(tmp_path)], plot=str(png))
    assert outputs  # records still go to stdout without --summary
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_without_matplotlib_exits_1_with_the_install_command(tmp_path, monkeypatch, capsysbinary):
    monkeypatch.setattr(backtest, "matplotlib_available", lambda: False)
    png = tmp_path / "w.png"
    code, out, err = cli_run(monkeypatch, capsysbinary, [status_and_bills(tmp_path), "--plot", str(png)])
    assert (code, out) == (1, b"")
    assert "matplotlib" in err and "[plot]" in err and not png.exists()


def test_no_progress_output_for_a_small_file_off_a_terminal(tmp_path):
    _, err, _ = run([status_and_bills(tmp_path)])
    assert err.count("\n") == 1 and err.startswith("backtest: 9 records")  # only the closing line


def test_a_defect_leaves_state_as_before_and_becomes_an_internal_dead_letter(tmp_path, monkeypatch):
    # The defect strikes after the settlement's window was written (in the R4 check that
    # follows it): the backtest, like the worker, must take that write back.
    from stream_app import processing

    real = processing.post_death.warnings

    def warnings(person, entries, *args, **kwargs):
        if any(e.event_id == "boom" for e in entries):
            raise RuntimeError("a defect")
        return real(person, entries, *args, **kwargs)

    monkeypatch.setattr(processing.post_death, "warnings", warnings)
    path = write(
        tmp_path / "in.jsonl",
        [
            line("DEATH_REGISTRATIONS", death_value("d1", A, "2018-01-01"), ts=0),
            line("MEDICAL_SETTLEMENTS", bill("s1", A, "20000"), ts=1, offset=0),
            line("MEDICAL_SETTLEMENTS", bill("boom", A, "15000"), ts=2, offset=1),
            line("MEDICAL_SETTLEMENTS", bill("s2", A, "9000"), ts=3, offset=2),
            line("MEDICAL_SETTLEMENTS", bill("s3", A, "1000"), ts=4, offset=3),
        ],
    )
    outputs, err, stats = run([path])
    letter, warning = (o["payload"] for o in outputs)
    assert (letter["error_class"], letter["offset"]) == ("internal", 1)
    assert letter["error"].startswith("processing raised RuntimeError: a defect")
    assert (warning["caused_by"], warning["rolling_self_pay"]) == ("s3", "30000.00")  # boom not kept
    assert stats.internal_errors == 1 and "internal error" in err


def test_a_forward_over_the_size_limit_is_a_dead_letter_as_in_the_worker(tmp_path):
    # The backtest hands forwards to the household side as records, not bytes; one whose bytes
    # exceed STREAM_APP_MAX_RECORD_BYTES must still give the worker's dead letter.
    value = settlement_value("Y", A, "2019-05-01T10:00:00+08:00", "31000", household_id="H", total_cost="1")
    text = json.dumps(value, separators=(",", ":"))
    small = load({"STREAM_APP_MAX_RECORD_BYTES": str(len(text))})  # the input fits, its forward not
    path = write(tmp_path / "in.jsonl", [line("MEDICAL_SETTLEMENTS", text, 1000, key=A)])
    got, _, _ = run([path], settings=small)
    assert [(obj["topic"], obj["payload"].get("rule") or obj["payload"]["error_class"]) for obj in got] == [
        (small.topic("ASSISTANCE_WARNINGS"), "MEDICAL_SELF_PAY"),
        (small.topic("DEADLETTER"), "too_large"),
    ]
    letter = got[1]["payload"]
    assert (letter["topic"], letter["partition"], letter["offset"]) == (
        small.topic("HOUSEHOLD_SETTLEMENTS"),
        -1,
        -1,
    )
    # The streaming model (the forward's bytes through the decoder) gives the same.
    processor = Processor(small, DictState(), DictState())
    processed = processor.process(small.topic("MEDICAL_SETTLEMENTS"), 0, 0, A.encode(), text.encode())
    expected = [
        (small.topic(item.topic), json.loads(encode(stamped(item.value, backtest.stamp_text(1000)))))
        for item in processor.with_households(processed)
    ]
    assert [(obj["topic"], obj["payload"]) for obj in got] == expected


@pytest.mark.parametrize("jobs", [2, 3])
def test_jobs_give_the_same_outputs_in_the_same_order(tmp_path, jobs):
    # A generated feed (bad records, households, deaths, double enrolments) split over processes
    # by person, then by household: byte for byte what one process prints, and the same counts.
    path = tmp_path / "feed.jsonl"
    synthetic.write(str(path), 12_000, persons=1_500, seed=5)
    one, jobs_out = io.BytesIO(), io.BytesIO()
    stats_one = backtest.run(SETTINGS, backtest.Options([str(path)]), one, io.StringIO())
    stats_jobs = backtest.run(SETTINGS, backtest.Options([str(path)], jobs=jobs), jobs_out, io.StringIO())
    assert jobs_out.getvalue() == one.getvalue()
    assert stats_jobs.outputs == stats_one.outputs
    assert stats_one.outputs["ASSISTANCE_WARNINGS"] and stats_one.outputs["DEADLETTER"]
    rules = {obj["payload"].get("rule") for obj in backtest.iter_output_lines(one.getvalue())}
    assert "HOUSEHOLD_SELF_PAY" in rules  # the household side ran in the processes too
    assert stats_jobs.cpu_s > 0


def test_jobs_take_a_defect_back_and_report_it_as_one_process_does(tmp_path, monkeypatch):
    # The defect strikes on both sides: a person's settlement (after its window was written) and
    # a household's forward; the children inherit the defect (fork) and the parent reports both.
    from stream_app import processing

    real_warnings, real_household = processing.post_death.warnings, processing.household.step

    def warnings(person, entries, *args, **kwargs):
        if any(e.event_id == "boom" for e in entries):
            raise RuntimeError("a defect")
        return real_warnings(person, entries, *args, **kwargs)

    def household_step(state, rec, **kwargs):
        if rec.event_id == "hboom":
            raise ValueError("another defect")
        return real_household(state, rec, **kwargs)

    monkeypatch.setattr(processing.post_death, "warnings", warnings)
    monkeypatch.setattr(processing.household, "step", household_step)
    path = write(
        tmp_path / "in.jsonl",
        [
            line("DEATH_REGISTRATIONS", death_value("d1", A, "2018-01-01"), ts=0),
            line("MEDICAL_SETTLEMENTS", bill("s1", A, "20000"), ts=1, offset=0),
            line("MEDICAL_SETTLEMENTS", {**bill("hboom", B, "100"), "household_id": "H-1"}, ts=2, offset=1),
            line("MEDICAL_SETTLEMENTS", bill("boom", A, "15000"), ts=3, offset=2),
            line("MEDICAL_SETTLEMENTS", bill("s2", A, "9000"), ts=4, offset=3),
            line("MEDICAL_SETTLEMENTS", bill("s3", A, "1000"), ts=5, offset=4),
            line("MEDICAL_SETTLEMENTS", {**bill("s4", D, "31000"), "household_id": "H-1"}, ts=6, offset=5),
        ],
    )
    one, one_err, one_stats = run([path])
    many, many_err, many_stats = run([path], jobs=2)
    assert many == one
    assert (many_stats.internal_errors, many_stats.internal_error_at) == (2, one_stats.internal_error_at)
    assert [o["payload"].get("error_class") or o["payload"]["rule"] for o in one] == [
        "internal",  # the household side of hboom
        "internal",  # boom
        "MEDICAL_SELF_PAY",  # s3: boom not kept
        "MEDICAL_SELF_PAY",  # s4
        "HOUSEHOLD_SELF_PAY",  # s4 in H-1
    ]
    assert one[-1]["payload"]["rolling_self_pay"] == "31000.00"  # hboom's 100 not kept in H-1
    assert many_err.splitlines()[1:] == one_err.splitlines()[1:]  # the error lines, word for word


def test_cli_jobs_must_be_a_whole_number_of_at_least_1(tmp_path, monkeypatch, capsysbinary):
    path = write(tmp_path / "in.jsonl", [line("MEDICAL_SETTLEMENTS", bill("s1", A, "35000"), ts=1)])
    code, out, err = cli_run(monkeypatch, capsysbinary, [path, "--jobs", "0"])
    assert (code, out) == (2, b"") and "--jobs" in err
    code, out, _ = cli_run(monkeypatch, capsysbinary, [path, "--jobs", "4"])  # more than records
    assert code == 0 and len(out.splitlines()) == 1
