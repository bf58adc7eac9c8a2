"""``stream-app``: the local broker, the worker, the demo and small tools.

Progress goes to stderr, results to stdout. Exit codes: 0 ok, 1 failure, 2 usage.
"""

from __future__ import annotations

import argparse
import logging.config
import os
import sys
from typing import Any

from stream_app import settings as settings_module

# From records, not replay: replay imports kafka, which no command but replay needs.
from stream_app.records import ERROR_CLASSES
from stream_app.settings import SettingsError
from stream_app.topology import OUTPUT_TOPICS


def _broker(args: argparse.Namespace, settings: settings_module.Settings) -> int:
    from stream_app import broker

    return broker.run_foreground(args.host, args.port)


def _worker(args: argparse.Namespace, settings: settings_module.Settings) -> int:
    import faust

    from stream_app.admin import ensure_topics
    from stream_app.app import create_app
    from stream_app.logs import worker_logging_config
    from stream_app.startup import probes_while_waiting

    config = worker_logging_config(settings)
    logging.config.dictConfig(config)  # Faust's worker applies the same config again
    with probes_while_waiting(settings):
        ensure_topics(settings, wait_s=None)  # no deadline: wait for the broker, never crash-loop
    app, _runtime = create_app(settings)
    worker = faust.Worker(
        app,
        loglevel=settings.log_level.upper(),
        logging_config=config,
        redirect_stdouts=False,
    )
    worker.execute_from_commandline()  # returns only via SystemExit
    return 0


def _demo(args: argparse.Namespace, settings: settings_module.Settings) -> int:
    from stream_app import demo

    return demo.run(settings, keep_data=args.keep_data)


def _bench(args: argparse.Namespace, settings: settings_module.Settings) -> int:
    from dataclasses import replace

    from stream_app import bench

    plan = bench.QUICK if args.quick else bench.FULL
    plan = replace(
        plan,
        events=args.events or plan.events,
        persons=args.persons or plan.persons,
        seed=args.seed,
    )
    # The bench starts its own local broker unless STREAM_APP_BROKER names one.
    own_broker = not os.environ.get("STREAM_APP_BROKER")
    return bench.run(settings, plan, own_broker, sys.stdout, sys.stderr)


def _produce(args: argparse.Namespace, settings: settings_module.Settings) -> int:
    from stream_app.tools import produce_lines

    topic = settings.topics.get(args.topic, args.topic) if args.topic else None
    with sys.stdin if args.file == "-" else open(args.file, encoding="utf-8") as fh:
        produce_lines(settings, fh, topic, args.max_messages, sys.stderr)
    return 0


def _tail(args: argparse.Namespace, settings: settings_module.Settings) -> int:
    from stream_app.tools import tail, write_json_line

    names = [settings.topics.get(t, t) for t in args.topics] or [settings.topic(t) for t in OUTPUT_TOPICS]
    try:
        for record in tail(settings, names, args.from_beginning):
            write_json_line(record)
    except KeyboardInterrupt:
        pass
    return 0


def _backtest(args: argparse.Namespace, settings: settings_module.Settings) -> int:
    from stream_app import backtest

    try:
        settings = backtest.apply_flags(
            settings,
            medical_tiers=args.medical_tiers,
            household_tiers=args.household_tiers,
            assistance_standard=args.assistance_standard,
            post_death_grace_days=args.post_death_grace_days,
            exclusive_programs=args.exclusive_programs,
        )
        jobs = settings_module.parse_whole(args.jobs, "--jobs", 1)
    except SettingsError as exc:
        print(f"stream-app backtest: {exc}", file=sys.stderr)
        return 2
    if args.plot and not backtest.matplotlib_available():
        print(
            "stream-app backtest: --plot needs matplotlib, an optional extra: "
            "pip install 'benefit-integrity[plot]' (or .venv/bin/pip install -e '.[plot]')",
            file=sys.stderr,
        )
        return 1
    options = backtest.Options(
        args.files, summary=args.summary, plot=args.plot, progress=args.progress, jobs=jobs
    )
    try:
        stats = backtest.run(settings, options, sys.stdout.buffer, sys.stderr)
    except backtest.InputError as exc:
        print(f"stream-app backtest: {exc}", file=sys.stderr)
        return 1
    backtest.report(stats, sys.stderr)
    return 0


def _replay_deadletters(args: argparse.Namespace, settings: settings_module.Settings) -> int:
    from stream_app import replay

    selection = replay.Selection(
        topics=replay.resolve_topics(args.topic, settings),
        classes=frozenset(args.error_class or replay.DEFAULT_CLASSES),
        since=args.since,
        until=args.until,
    )
    if selection.since and selection.until and selection.since >= selection.until:
        print("stream-app: --since must be before --until", file=sys.stderr)
        return 2
    return replay.run(settings, selection, args.dry_run, sys.stdout, sys.stderr, timeout=args.timeout)


def _time(text: str) -> Any:
    from stream_app.replay import parse_time

    try:
        return parse_time(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not a positive whole number")
    return value


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="stream-app", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    b = sub.add_parser("broker", help="run the local Kafka-protocol broker (tansu) in the foreground")
    b.add_argument("--host", default="127.0.0.1")
    b.add_argument("--port", type=int, default=9092)
    b.set_defaults(run=_broker)

    w = sub.add_parser("worker", help="run the stream worker in the foreground (settings: STREAM_APP_*)")
    w.set_defaults(run=_worker)

    d = sub.add_parser("demo", help="broker, worker and the seed stories; outputs printed as they arrive")
    d.add_argument("--keep-data", action="store_true", help="keep the worker's data dir and log")
    d.set_defaults(run=_demo)

    be = sub.add_parser(
        "bench",
        help="measure the worker beside a raw consumer and a naive Faust agent; JSON on the last stdout line",
    )
    be.add_argument("--quick", action="store_true", help="a run short enough for CI (5,000 records)")
    be.add_argument("--events", type=_positive, help="records to process (default 100,000; quick 5,000)")
    be.add_argument("--persons", type=_positive, help="distinct persons (default 20,000; quick 1,000)")
    be.add_argument("--seed", type=int, default=1, help="seed of the generated feed (default 1)")
    be.set_defaults(run=_bench)

    pr = sub.add_parser("produce", help="send a file of JSON lines (bare values or kcat -J form)")
    pr.add_argument("file", help="file of JSON lines, or - for stdin")
    pr.add_argument("--topic", help="topic (or logical name, e.g. MEDICAL_SETTLEMENTS) for bare values")
    pr.add_argument("--max-messages", type=int, default=None)
    pr.set_defaults(run=_produce)

    t = sub.add_parser("tail", help="print output topics' records as kcat -J lines (Ctrl-C stops)")
    t.add_argument("topics", nargs="*", help="topics or logical names (default: every output topic)")
    t.add_argument("--from-beginning", action="store_true")
    t.set_defaults(run=_tail)

    bt = sub.add_parser(
        "backtest",
        help="run the rules over recorded input (kcat -J lines), no broker; outputs as kcat -J lines",
        description="Run the worker's per-record code over kcat -J files in ts order (ties in file "
        "order) and print the outputs it gives, as kcat -J lines on stdout (emitted_at = the input "
        "record's ts). Settings come from STREAM_APP_*; the flags below override them.",
    )
    bt.add_argument("files", nargs="+", metavar="FILE", help="kcat -J lines; - reads stdin")
    bt.add_argument("--medical-tiers", metavar="YUAN,...", help="R1 tiers (STREAM_APP_MEDICAL_TIERS)")
    bt.add_argument("--household-tiers", metavar="YUAN,...", help="R7 tiers (STREAM_APP_HOUSEHOLD_TIERS)")
    bt.add_argument(
        "--assistance-standard",
        metavar="DEDUCTIBLE:RATE:CAP",
        help="R8 standard (STREAM_APP_ASSISTANCE_STANDARD)",
    )
    bt.add_argument(
        "--post-death-grace-days", metavar="N", help="R4 grace days (STREAM_APP_POST_DEATH_GRACE_DAYS)"
    )
    bt.add_argument(
        "--exclusive-programs", metavar="A:B,...", help="R6 pairs (STREAM_APP_EXCLUSIVE_PROGRAMS)"
    )
    bt.add_argument(
        "--summary",
        action="store_true",
        help="print instead a table of counts per rule/tier/reason, by month and by region",
    )
    bt.add_argument("--plot", metavar="FILE.png", help="also draw warnings per month per rule (matplotlib)")
    bt.add_argument(
        "--jobs",
        metavar="N",
        default="1",
        help="run in N processes, persons and households split between them: the same outputs "
        "in the same order, faster on N cores, up to N times the memory (default 1)",
    )
    bt.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="progress on stderr (default: a bar on a terminal; sparse lines for large input otherwise)",
    )
    bt.set_defaults(run=_backtest)

    r = sub.add_parser(
        "replay-deadletters",
        help="send chosen dead letters back to their input topics (once the defect behind them is fixed)",
        description="Read deadletter.v1 to its end and send the chosen dead letters' records, key and "
        "value restored byte for byte, back to their input topics. Lists each on stdout (kcat-like JSON "
        "lines), counts per topic on stderr. Replaying is safe: a record already processed counts once.",
    )
    r.add_argument(
        "--topic",
        action="append",
        default=[],
        help="only dead letters of this input topic (name or logical name, e.g. MEDICAL_SETTLEMENTS); "
        "repeatable",
    )
    r.add_argument(
        "--error-class",
        action="append",
        choices=ERROR_CLASSES,
        help="only this class; repeatable. Default: internal only (bad input sent back unchanged would "
        "only be dead-lettered again; too_large ones cannot be restored and are refused)",
    )
    r.add_argument("--since", type=_time, help="received_at at or after this RFC 3339 date-time")
    r.add_argument("--until", type=_time, help="received_at before this RFC 3339 date-time")
    r.add_argument("--dry-run", action="store_true", help="list what would be sent; send nothing")
    r.add_argument("--timeout", type=float, default=60, help="seconds to read deadletter.v1 to its end")
    r.set_defaults(run=_replay_deadletters)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        settings = settings_module.load()
    except SettingsError as exc:
        print(f"stream-app: {exc}", file=sys.stderr)
        return 2
    return int(args.run(args, settings) or 0)
