"""``stream-app backtest``: the worker's own per-record code over recorded input, no broker.

Input: files of kcat ``-J`` lines (``topic``, ``partition``, ``offset``, ``key``,
``payload``, ``ts`` in ms; other fields ignored). Records are taken in ``ts`` order,
ties in file order (files in the order given, lines in file order: a stable sort),
and each goes through :class:`stream_app.processing.Processor` over in-memory
``DictState``s, exactly as the worker runs it on its tables. So the outputs are the
records a streaming run of the same input in the same order emits, ids included;
bad records give the same dead letters, with the file's topic/partition/offset.

Decisions (see docs/usage.md, "Backtest"):

- ``emitted_at`` (``received_at`` on dead letters) is the input record's ``ts`` as
  RFC 3339 UTC with milliseconds, not the wall clock: the streaming worker stamps
  the moment it emits, which is shortly after the record arrived, and a backtest
  run twice gives byte-identical output that ``diff`` can compare.
- A line whose topic is not one of the four input topics (as named by
  ``STREAM_APP_TOPIC_*``) is skipped and counted per topic on stderr; so is a line
  that is not a JSON object with ``topic``, ``partition``, ``offset``, ``ts`` and
  ``payload`` of the right types (counted, first few positions shown). Blank lines
  are ignored. Neither stops the run, nor changes the exit code.
- ``payload`` is a string as kcat prints it (its UTF-8 bytes are the value), or
  null (a tombstone: a ``json`` dead letter, as in the worker). A JSON object or
  other JSON value in its place (as ``stream-app tail`` prints) is taken as the
  value's exact text.
- R7: a settlement's forward to the internal household topic is not printed; it is
  processed at once, as the worker's household agent would, and its outputs follow the
  record's own. Lines of the internal topic itself are skipped like any other topic's.
- A record whose processing raises (a defect, never bad input) leaves the state as
  before it and becomes an ``internal`` dead letter, as in the worker; counted on stderr.
- ``--jobs N``: the same run in N forked processes, records split by key (a person's all in
  one), then R7's forwards by household; the parent prints each output where one process
  would have, so the output is byte for byte the same (see "In several processes" below).

All records are held in memory to sort them (about the size of the files).
This module imports no Faust.
"""

from __future__ import annotations

import gc
import multiprocessing
import os
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from operator import itemgetter
from typing import IO, Any, BinaryIO, TextIO, TypeVar, cast
from zlib import crc32

import msgspec

from stream_app.processing import (
    HOUSEHOLD_TOPIC,
    DictState,
    Emit,
    Processed,
    Processor,
    processing_failed,
    stamped,
)
from stream_app.records import (
    AssistanceWarning,
    DeadLetter,
    HouseholdSettlement,
    Output,
    PaymentResume,
    PaymentStop,
    encode,
)
from stream_app.rules.common import CST
from stream_app.rules.household import HouseholdState
from stream_app.rules.medical import MedicalState
from stream_app.rules.status import StatusState
from stream_app.settings import (
    Settings,
    parse_pairs,
    parse_standard,
    parse_tiers,
    parse_whole,
)
from stream_app.topology import INPUT_TOPICS

S = TypeVar("S")
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
#: Above this much input, progress is shown even when stderr is not a terminal (sparsely).
LARGE_INPUT_BYTES = 256 * 1024 * 1024
#: Without a terminal, at most one progress line per this many seconds.
PLAIN_PROGRESS_EVERY_S = 30.0
_PROGRESS_STEP = 8192  # records between progress updates


class _Line(msgspec.Struct):
    """One kcat -J line; ``payload`` raw, so a string and an object are both accepted."""

    topic: str
    partition: int
    offset: int
    ts: int
    payload: msgspec.Raw
    key: str | None = None


class _TextLine(msgspec.Struct):
    """The usual kcat -J line: ``payload`` a string (or null); one parse, no second decode."""

    topic: str
    partition: int
    offset: int
    ts: int
    payload: str | None
    key: str | None = None


class _Out(msgspec.Struct):
    """One output line, kcat -J form: ``ts`` is the input record's."""

    topic: str
    key: str | None
    payload: str
    ts: int


_LINE = msgspec.json.Decoder(_Line)
_TEXT_LINE = msgspec.json.Decoder(_TextLine)
_TEXT = msgspec.json.Decoder(str)
_OUT = msgspec.json.Encoder()

#: (ts, topic, partition, offset, key, value): one input record, ready for the processor.
Record = tuple[int, str, int, int, bytes | None, bytes | None]


@dataclass
class Stats:
    """What a run read, skipped and produced; printed on stderr at the end."""

    files: int = 0
    lines: int = 0
    records: int = 0
    unknown_topics: Counter[str] = field(default_factory=Counter)
    unparseable: int = 0
    unparseable_at: list[str] = field(default_factory=list)
    internal_errors: int = 0
    internal_error_at: list[str] = field(default_factory=list)
    outputs: Counter[str] = field(default_factory=Counter)
    read_s: float = 0.0
    process_s: float = 0.0
    total_s: float = 0.0
    #: CPU time over the same span as ``total_s``, this process's and its children's
    #: (``--jobs``): steadier than the wall clock on a shared machine, and what "records/s on
    #: one core" means.
    cpu_s: float = 0.0

    @property
    def records_per_s(self) -> float:
        return self.records / self.total_s if self.total_s > 0 else 0.0

    @property
    def records_per_cpu_s(self) -> float:
        return self.records / self.cpu_s if self.cpu_s > 0 else 0.0

    @property
    def processed_per_s(self) -> float:
        return self.records / self.process_s if self.process_s > 0 else 0.0


# ---------------------------------------------------------------------------
# Settings from flags


def apply_flags(
    settings: Settings,
    *,
    medical_tiers: str | None = None,
    household_tiers: str | None = None,
    assistance_standard: str | None = None,
    post_death_grace_days: str | None = None,
    exclusive_programs: str | None = None,
) -> Settings:
    """Settings with the rule parameters the flags give; raises SettingsError naming the flag."""
    rules = settings.rules
    if medical_tiers is not None:
        rules = replace(rules, medical_tiers_fen=parse_tiers(medical_tiers, "--medical-tiers"))
    if household_tiers is not None:
        rules = replace(rules, household_tiers_fen=parse_tiers(household_tiers, "--household-tiers"))
    if assistance_standard is not None:
        rules = replace(rules, standard=parse_standard(assistance_standard, "--assistance-standard"))
    if post_death_grace_days is not None:
        grace = parse_whole(post_death_grace_days, "--post-death-grace-days", 0)
        rules = replace(rules, post_death_grace_days=grace)
    if exclusive_programs is not None:
        rules = replace(rules, exclusive_programs=parse_pairs(exclusive_programs, "--exclusive-programs"))
    return replace(settings, rules=rules)


# ---------------------------------------------------------------------------
# Reading


def _value(raw: msgspec.Raw) -> bytes | None:
    token = bytes(raw)
    if token[:1] == b'"':
        return _TEXT.decode(token).encode("utf-8")
    if token == b"null":
        return None
    return token  # a JSON object (or other value) in place of the string: its exact text


def read_lines(
    lines: Iterable[bytes], name: str, input_topics: set[str], stats: Stats, tick: Callable[[int], None]
) -> list[Record]:
    """The input records of one file, in file order; bad and foreign lines counted in ``stats``."""
    records: list[Record] = []
    append = records.append
    decode_line, decode_text_line = _LINE.decode, _TEXT_LINE.decode
    number = 0
    for number, line in enumerate(lines, 1):
        if number % _PROGRESS_STEP == 0:
            tick(number)
        try:
            try:
                rec: Any = decode_text_line(line)
                value = rec.payload.encode("utf-8") if rec.payload is not None else None
            except msgspec.ValidationError:  # a JSON value in place of the string, or a bad line
                rec = decode_line(line)
                value = _value(rec.payload)
            key = rec.key.encode("utf-8") if rec.key is not None else None
        except (msgspec.DecodeError, UnicodeEncodeError):
            if not line.strip():  # a blank line (checked only here: it never decodes)
                continue
            stats.unparseable += 1
            if len(stats.unparseable_at) < 3:
                stats.unparseable_at.append(f"{name}:{number}")
            continue
        if rec.topic not in input_topics:
            stats.unknown_topics[rec.topic] += 1
            continue
        append((rec.ts, rec.topic, rec.partition, rec.offset, key, value))
    stats.lines += number
    return records


def read_files(
    handles: list[tuple[str, BinaryIO]], input_topics: set[str], stats: Stats, tick: Callable[[int], None]
) -> list[Record]:
    """Every input record of every file, sorted by ts; ties keep file order (a stable sort)."""
    records: list[Record] = []
    done = 0
    for name, handle in handles:

        def shifted(n: int, base: int = done) -> None:  # progress counts lines over all files
            tick(base + n)

        records.extend(read_lines(handle, name, input_topics, stats, shifted))
        done = stats.lines
        stats.files += 1
    records.sort(key=itemgetter(0))
    stats.records = len(records)
    return records


# ---------------------------------------------------------------------------
# Processing


def stamp_text(ts_ms: int) -> str:
    """An input record's ts as the worker writes ``emitted_at``: RFC 3339, UTC, milliseconds."""
    return (EPOCH + timedelta(milliseconds=ts_ms)).isoformat(timespec="milliseconds")


RunOne = Callable[[str, int, int, bytes | None, bytes | None], Processed]
RunForward = Callable[[Emit], Processed]


def _runner(settings: Settings, errors: list[str]) -> tuple[RunOne, RunForward]:
    """The worker's processor over in-memory state: a record, or an R7 forward, in; what it gave
    out. A record whose processing raises (a defect, never bad input) leaves the state as before
    it and gives an ``internal`` dead letter, as in the worker; ``errors`` notes where."""
    undo: list[tuple[DictState[Any], str, Any]] = []  # the writes of the record in hand
    medical_state: _UndoableState[MedicalState] = _UndoableState(undo)
    status_state: _UndoableState[StatusState] = _UndoableState(undo)
    household_state: _UndoableState[HouseholdState] = _UndoableState(undo)
    processor = Processor(settings, medical_state, status_state, household_state)
    process_one = processor.process
    process_forward = processor.process_forward
    limit = settings.max_record_bytes
    household_topic = settings.topic(HOUSEHOLD_TOPIC)

    def failed(
        exc: Exception, topic: str, partition: int, offset: int, key: bytes | None, value: bytes | None
    ) -> Processed:
        _rollback(undo)
        errors.append(f"{topic}[{partition}]@{offset}: {type(exc).__name__}")
        return processing_failed(exc, topic, partition, offset, key, value, limit)

    def run_one(topic: str, partition: int, offset: int, key: bytes | None, value: bytes | None) -> Processed:
        try:
            processed = process_one(topic, partition, offset, key, value)
        except Exception as exc:
            return failed(exc, topic, partition, offset, key, value)
        if undo:
            undo.clear()
        return processed

    def run_forward(item: Emit) -> Processed:
        # R7's re-keyed record: not printed, but consumed at once as the worker's household
        # agent would (no offset: nothing was read), handed over without a JSON round trip.
        try:
            processed = process_forward(item)
        except Exception as exc:
            return failed(exc, household_topic, -1, -1, item.key, encode(item.value))
        if undo:
            undo.clear()
        return processed

    return run_one, run_forward


def process(
    settings: Settings,
    records: Sequence[Record],
    sink: Callable[[Emit, Output, int], None],
    stats: Stats,
    tick: Callable[[int], None] = lambda n: None,
    jobs: int = 1,
) -> None:
    """Run every record through the worker's processor; hand each output, stamped, to ``sink``:
    in the order of the records, a record's outputs in the order it gave them, an R7 forward's
    household outputs in its place. ``jobs`` > 1: in that many processes (``_in_processes``),
    the same outputs in the same order."""
    outputs = stats.outputs
    errors: list[str] = []
    if jobs > 1:
        placed, errors = _in_processes(settings, records, jobs)
        tick(len(records))
        for (index, _), emits in placed:
            ts = records[index][0]
            now = stamp_text(ts)
            for out in emits:
                outputs[out.topic] += 1
                sink(out, stamped(out.value, now), ts)  # type: ignore[arg-type]  # an output
    else:
        run_one, run_forward = _runner(settings, errors)
        with _no_cyclic_gc():
            for n, (ts, topic, partition, offset, key, value) in enumerate(records, 1):
                processed = run_one(topic, partition, offset, key, value)
                if processed.emits:
                    # The stamp is made only for a record that prints something: most records
                    # with emits have only a forward to the household topic, not printed.
                    now = None
                    for item in processed.emits:
                        printed = run_forward(item).emits if item.topic == HOUSEHOLD_TOPIC else (item,)
                        for out in printed:
                            if now is None:
                                now = stamp_text(ts)
                            outputs[out.topic] += 1
                            sink(out, stamped(out.value, now), ts)  # type: ignore[arg-type]  # an output
                if n % _PROGRESS_STEP == 0:
                    tick(n)
    stats.internal_errors += len(errors)
    stats.internal_error_at.extend(errors[: 3 - len(stats.internal_error_at)])


# ---------------------------------------------------------------------------
# In several processes (--jobs)
#
# Every rule's state is a person's (keyed like the records: a valid record's key is its
# person_id) but R7's, a household's. So the records are split by key over the processes, and
# each runs the person side of its share in the one global order; then the forwards, collected
# and put in the order one process would have made them (record, then place among its emits),
# are split by household and run the same way; the parent prints every output at its place
# (record index, place among that record's emits). A record whose processing raised is
# reported at the same place. Records and forwards reach the children by fork (copy on write:
# nothing pickled in); results come back pickled, the forwards as JSON (several times faster).

#: What the forked children read: the records (person side), then the forwards (household side).
_SHARED: Any = None
#: (record index, place among its emits): where an output is printed, in one process's order.
Place = tuple[int, int]
#: The forwards as JSON: the record's own encoding (a UTC offset kept, as msgpack's timestamps
#: would not), decoded to the same record (``test_a_forward_decodes_to_itself``).
_FORWARDS = msgspec.json.Decoder(list[tuple[int, int, HouseholdSettlement]])


def _shard(key: bytes | None, jobs: int) -> int:
    return crc32(key) % jobs if key is not None else 0


def _person_side(
    shard: int, jobs: int, settings: Settings
) -> tuple[list[tuple[Place, tuple[Emit, ...]]], bytes, list[tuple[Place, str]]]:
    """One share of the records: its outputs at their places, its forwards (JSON of
    (index, place, record)), where its errors fell."""
    errors: list[str] = []
    run_one, _ = _runner(settings, errors)
    printed: list[tuple[Place, tuple[Emit, ...]]] = []
    forwards: list[tuple[int, int, Any]] = []
    placed: list[tuple[Place, str]] = []
    with _no_cyclic_gc():
        for index, (_, topic, partition, offset, key, value) in enumerate(_SHARED):
            if _shard(key, jobs) != shard:
                continue
            processed = run_one(topic, partition, offset, key, value)
            for position, item in enumerate(processed.emits):
                if item.topic == HOUSEHOLD_TOPIC:
                    forwards.append((index, position, item.value))
                else:
                    printed.append(((index, position), (item,)))
            if len(errors) > len(placed):
                placed.append(((index, -1), errors[-1]))
    return printed, msgspec.json.encode(forwards), placed


def _household_side(
    shard: int, jobs: int, settings: Settings
) -> tuple[list[tuple[Place, tuple[Emit, ...]]], list[tuple[Place, str]]]:
    """One share of the households' forwards: their outputs at their places, where errors fell."""
    errors: list[str] = []
    _, run_forward = _runner(settings, errors)
    printed: list[tuple[Place, tuple[Emit, ...]]] = []
    placed: list[tuple[Place, str]] = []
    with _no_cyclic_gc():
        for index, position, rec in _SHARED:
            key = rec.household_id.encode()
            if _shard(key, jobs) != shard:
                continue
            emits = run_forward(Emit(HOUSEHOLD_TOPIC, key, rec)).emits
            if emits:
                printed.append(((index, position), emits))
            if len(errors) > len(placed):
                placed.append(((index, position), errors[-1]))
    return printed, placed


def _finish(pool: Any) -> None:
    # Children that exit by themselves and are waited for: their CPU time counts in the run's.
    pool.close()
    pool.join()


def _in_processes(
    settings: Settings, records: Sequence[Record], jobs: int
) -> tuple[list[tuple[Place, tuple[Emit, ...]]], list[str]]:
    """Both sides in ``jobs`` processes: the outputs in the order one process prints them, at
    their places, and the errors in order."""
    global _SHARED
    context = multiprocessing.get_context("fork")
    shards = [(shard, jobs, settings) for shard in range(jobs)]
    try:
        _SHARED = records
        with context.Pool(jobs) as pool:
            person = pool.starmap(_person_side, shards)
            _finish(pool)
        _SHARED = sorted(rec for _, forwards, _ in person for rec in _FORWARDS.decode(forwards))
        household: list[tuple[list[tuple[Place, tuple[Emit, ...]]], list[tuple[Place, str]]]] = []
        if _SHARED:
            with context.Pool(jobs) as pool:
                household = pool.starmap(_household_side, shards)
                _finish(pool)
    finally:
        _SHARED = None
    printed = sorted(
        [
            *(item for part, _, _ in person for item in part),
            *(item for part, _ in household for item in part),
        ],
        key=itemgetter(0),
    )
    errors = sorted(
        [*(e for _, _, part in person for e in part), *(e for _, part in household for e in part)]
    )
    return printed, [text for _, text in errors]


class _UndoableState(DictState[S]):
    """A DictState whose writes can be taken back: each put notes the value it replaces in
    ``undo``, a list the states of one run share (so one check per record clears it)."""

    def __init__(self, undo: list[tuple[DictState[Any], str, Any]]) -> None:
        super().__init__()
        self.undo = undo

    def put(self, key: str, state: S | None) -> None:
        data = self.data
        self.undo.append((self, key, data.get(key)))
        if state is None:  # DictState.put, inlined: once for most records
            data.pop(key, None)
        else:
            data[key] = state


def _rollback(undo: list[tuple[DictState[Any], str, Any]]) -> None:
    """Take back the noted writes, newest first: every state as before the record."""
    for state, key, before in reversed(undo):
        DictState.put(state, key, before)
    undo.clear()


@contextmanager
def _no_cyclic_gc() -> Iterator[None]:
    """The records read and the state dicts are many long-lived objects in no reference cycle:
    the cyclic collector would only rescan them over and over (about 20% of a run)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


# ---------------------------------------------------------------------------
# Outputs: records (kcat -J lines) or a summary


def record_writer(settings: Settings, out: BinaryIO) -> Callable[[Emit, Output, int], None]:
    """A sink writing each output as one kcat -J line (``topic``, ``key``, ``payload``, ``ts``)."""
    names = dict(settings.topics)
    write = out.write

    def sink(item: Emit, value: Output, ts: int) -> None:
        key = item.key.decode("utf-8", "replace") if item.key is not None else None
        write(_OUT.encode(_Out(names[item.topic], key, encode(value).decode("utf-8"), ts)) + b"\n")

    return sink


def category(value: Output) -> str:
    """The summary's column for an output: rule (and tier), stop or resume reason, dead-letter class."""
    if isinstance(value, PaymentStop):
        return f"stop {value.reason}"
    if isinstance(value, PaymentResume):
        return f"resume {value.reason}"
    if isinstance(value, DeadLetter):
        return f"dead letter {value.error_class}"
    tier = getattr(value, "tier", None)
    return f"{value.rule} {tier}" if tier else value.rule


def month_of(value: Output, ts: int) -> str:
    """The summary's month: of the warning's ``occurred_at`` (as the source wrote it), of a
    stop's or resume's ``effective_on``, or of a dead letter's input ``ts`` (+08:00)."""
    if isinstance(value, AssistanceWarning):
        moment: date = value.occurred_at
    elif isinstance(value, PaymentStop | PaymentResume):
        moment = value.effective_on
    else:
        moment = (EPOCH + timedelta(milliseconds=ts)).astimezone(CST)
    return f"{moment.year:04d}-{moment.month:02d}"


@dataclass
class Summary:
    """Counts per category, by month and by region; also what the plot draws."""

    by_month: Counter[tuple[str, str]] = field(default_factory=Counter)
    by_region: Counter[tuple[str, str]] = field(default_factory=Counter)
    total: Counter[str] = field(default_factory=Counter)
    #: Warnings only, per rule (not tier): (month, rule) -> count.
    warnings: Counter[tuple[str, str]] = field(default_factory=Counter)

    def add(self, item: Emit, value: Output, ts: int) -> None:
        """A sink: count one output."""
        name = category(value)
        month = month_of(value, ts)
        self.by_month[(month, name)] += 1
        self.by_region[(getattr(value, "region_code", None) or "-", name)] += 1
        self.total[name] += 1
        if isinstance(value, AssistanceWarning):
            self.warnings[(month, value.rule)] += 1

    def columns(self) -> list[str]:
        order = {"stop": 1, "resume": 2, "dead": 3}
        return sorted(self.total, key=lambda name: (order.get(name.split(" ")[0], 0), name))


def render_summary(summary: Summary, stats: Stats, console: Any) -> None:
    """Two rich tables, by month and by region; a column per rule/tier, stop/resume reason,
    dead-letter class; a total row."""
    from rich.table import Table

    columns = summary.columns()
    console.print(
        f"backtest summary: {stats.records:,} records, {sum(summary.total.values()):,} outputs",
        highlight=False,
    )
    if not columns:
        console.print("no outputs")
        return
    for title, counts, label in (
        ("by month", summary.by_month, "month"),
        ("by region (region_code)", summary.by_region, "region"),
    ):
        table = Table(title=title, title_justify="left", show_footer=True)
        table.add_column(label, footer="total")
        for name in columns:
            table.add_column(name, justify="right", footer=f"{summary.total[name]:,}")
        table.add_column("all", justify="right", footer=f"{sum(summary.total.values()):,}")
        for row in sorted({row for row, _ in counts}):
            cells = [counts.get((row, name), 0) for name in columns]
            table.add_row(row, *(f"{c:,}" if c else "" for c in cells), f"{sum(cells):,}")
        console.print(table)


def plot_warnings(summary: Summary, path: str) -> None:
    """Warnings per month per rule, a line each, to a PNG (matplotlib, the ``plot`` extra)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    months = sorted({month for month, _ in summary.warnings})
    rules = sorted({rule for _, rule in summary.warnings})
    fig, ax = plt.subplots(figsize=(max(6.0, 0.35 * len(months) + 3), 4.5))
    for rule in rules:
        ax.plot(months, [summary.warnings.get((m, rule), 0) for m in months], marker="o", label=rule)
    ax.set_title("Warnings per month per rule (backtest)")
    ax.set_xlabel("month (event time)")
    ax.set_ylabel("warnings")
    if rules:
        ax.legend(fontsize="small")
    ax.tick_params(axis="x", labelrotation=60, labelsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def matplotlib_available() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


# ---------------------------------------------------------------------------
# Progress on stderr


class Progress:
    """A rich progress bar when stderr is a terminal; otherwise, for large inputs only, a plain
    line at most every 30 s (so CI logs get a few lines, not a bar redrawn)."""

    def __init__(self, err: TextIO, total_bytes: int | None, enabled: bool | None = None) -> None:
        self.err = err
        tty = err.isatty()
        large = total_bytes is None or total_bytes >= LARGE_INPUT_BYTES
        self.bar = tty if enabled is None else enabled and tty
        self.plain = (not tty and large) if enabled is None else enabled and not tty
        self._rich: Any = None
        self._task: Any = None
        self._last = time.monotonic()
        self._phase = ""

    def __enter__(self) -> Progress:
        if self.bar:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self._rich = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=Console(file=self.err),
                transient=True,
            )
            self._rich.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._rich is not None:
            self._rich.stop()

    def stop_bar(self) -> None:
        """No bar from here on: before ``--jobs`` forks, so that no refreshing thread holds a
        lock (stderr's) that a child would then wait for forever."""
        if self._rich is not None:
            self._rich.stop()
            self._rich = None

    def phase(self, description: str, total: int | None) -> Callable[[int], None]:
        self._phase = description
        if self._rich is not None:
            if self._task is not None:
                self._rich.remove_task(self._task)
            self._task = self._rich.add_task(description, total=total)
        return self.tick

    def tick(self, done: int) -> None:
        if self._rich is not None:
            self._rich.update(self._task, completed=done)
        elif self.plain and time.monotonic() - self._last >= PLAIN_PROGRESS_EVERY_S:
            self._last = time.monotonic()
            print(f"backtest: {self._phase}: {done:,}", file=self.err, flush=True)


# ---------------------------------------------------------------------------
# The command


@dataclass
class Options:
    files: list[str]
    summary: bool = False
    plot: str | None = None
    progress: bool | None = None  # None: decide from stderr and input size
    jobs: int = 1  # processes (the person and household sides split by key): same outputs


class InputError(Exception):
    """A named input file cannot be read."""


def _open_all(files: list[str], stdin: BinaryIO) -> tuple[list[tuple[str, BinaryIO]], int | None]:
    handles: list[tuple[str, BinaryIO]] = []
    total: int | None = 0
    try:
        for name in files:
            if name == "-":
                handles.append(("<stdin>", stdin))
                total = None
                continue
            handles.append((name, open(name, "rb")))  # noqa: SIM115 (closed by the caller)
            if total is not None:
                total += os.path.getsize(name)
    except OSError as exc:
        _close(handles, stdin)
        raise InputError(f"cannot read {exc.filename}: {exc.strerror}") from None
    return handles, total


def _close(handles: list[tuple[str, BinaryIO]], stdin: BinaryIO) -> None:
    for _, handle in handles:
        if handle is not stdin:
            handle.close()


def run(
    settings: Settings,
    options: Options,
    out: BinaryIO,
    err: TextIO,
    stdin: BinaryIO | None = None,
) -> Stats:
    """The whole backtest: read, sort, process, then write records or the summary (and plot)."""
    stdin = stdin if stdin is not None else sys.stdin.buffer
    stats = Stats()
    started, cpu_started = time.perf_counter(), _cpu_seconds()
    handles, total_bytes = _open_all(options.files, stdin)
    input_topics = {settings.topic(logical) for logical in INPUT_TOPICS}
    summary = Summary() if options.summary or options.plot else None
    try:
        with _no_cyclic_gc(), Progress(err, total_bytes, options.progress) as progress:
            records = read_files(handles, input_topics, stats, progress.phase("reading lines", None))
            stats.read_s = time.perf_counter() - started
            sinks = [] if options.summary else [record_writer(settings, out)]
            if summary is not None:
                sinks.append(summary.add)
            if len(sinks) == 1:
                sink = sinks[0]
            else:

                def sink(item: Emit, value: Output, ts: int) -> None:
                    for each in sinks:
                        each(item, value, ts)

            jobs = max(1, min(options.jobs, len(records)))
            if jobs > 1:
                progress.stop_bar()
            tick = progress.phase(
                "processing records" + (f" in {jobs} processes" if jobs > 1 else ""), len(records)
            )
            begun = time.perf_counter()
            process(settings, records, sink, stats, tick, jobs)
            stats.process_s = time.perf_counter() - begun
    finally:
        _close(handles, stdin)
    out.flush()
    stats.total_s = time.perf_counter() - started
    stats.cpu_s = _cpu_seconds() - cpu_started
    if summary is not None and options.summary:
        from rich.console import Console

        text_out = cast(IO[str], _TextOut(out))  # rich wants a text file; _TextOut has what it uses
        render_summary(summary, stats, Console(file=text_out, width=_summary_width(summary)))
    if summary is not None and options.plot:
        plot_warnings(summary, options.plot)
    return stats


def _cpu_seconds() -> float:
    """CPU time of this process and of its children that ended (``--jobs``), user and system."""
    children = os.times()
    return time.process_time() + children.children_user + children.children_system


def _summary_width(summary: Summary) -> int:
    """Wide enough that no column wraps (a table is read as a whole, also from a file)."""
    columns = summary.columns()
    return max(80, 12 + sum(max(len(name), 7) + 3 for name in columns) + 10)


class _TextOut:
    """A text file over a binary stream, for rich (which writes str)."""

    def __init__(self, out: BinaryIO) -> None:
        self.out = out

    def write(self, text: str) -> int:
        self.out.write(text.encode("utf-8"))
        return len(text)

    def flush(self) -> None:
        self.out.flush()

    def isatty(self) -> bool:
        return bool(getattr(self.out, "isatty", lambda: False)())


def report(stats: Stats, err: TextIO) -> None:
    """The closing lines on stderr: counts, skipped lines, the rate."""
    outputs = ", ".join(f"{n:,} {topic}" for topic, n in sorted(stats.outputs.items())) or "none"
    print(
        f"backtest: {stats.records:,} records from {stats.files} file(s) in {stats.total_s:.2f} s: "
        f"{stats.records_per_s:,.0f} records/s ({stats.processed_per_s:,.0f}/s processing alone, "
        f"{stats.records_per_cpu_s:,.0f}/s of CPU time); "
        f"outputs: {outputs}",
        file=err,
    )
    if stats.unknown_topics:
        topics = ", ".join(f"{t} ({n:,})" for t, n in sorted(stats.unknown_topics.items()))
        print(
            f"backtest: skipped {sum(stats.unknown_topics.values()):,} line(s) of topics that are "
            f"not input topics: {topics}",
            file=err,
        )
    if stats.unparseable:
        print(
            f"backtest: skipped {stats.unparseable:,} unparseable line(s) (not a kcat -J object with "
            f"topic, partition, offset, ts, payload), first at {', '.join(stats.unparseable_at)}",
            file=err,
        )
    if stats.internal_errors:
        print(
            f"backtest: {stats.internal_errors:,} record(s) raised an internal error (a defect): "
            f"state left as before each, an internal dead letter written, as the worker does: "
            f"{', '.join(stats.internal_error_at)}",
            file=err,
        )


def iter_output_lines(data: bytes) -> Iterator[dict[str, Any]]:
    """Parse a backtest's stdout (kcat -J lines) back into dicts with the payload decoded."""
    for line in data.splitlines():
        if line.strip():
            obj = msgspec.json.decode(line)
            obj["payload"] = msgspec.json.decode(obj["payload"])
            yield obj


__all__ = [
    "InputError",
    "Options",
    "Stats",
    "Summary",
    "apply_flags",
    "iter_output_lines",
    "matplotlib_available",
    "process",
    "read_files",
    "record_writer",
    "report",
    "run",
    "stamp_text",
]
