"""All settings, read once from ``STREAM_APP_*`` environment variables.

The defaults are those of the external contract (``../shared/CONTRACT.md``).
A bad value fails at start with a message naming the variable, never later
in the middle of a partition.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from urllib.parse import urlparse

# Every topic is declared in topology.py; a Kafka name here is its default or
# ``STREAM_APP_TOPIC_<NAME>``. (Re-exported: tests and the bench build their topic names from it.)
from stream_app.topology import DEFAULT_TOPICS as DEFAULT_TOPICS

PREFIX = "STREAM_APP_"


class SettingsError(ValueError):
    """A setting has a value the worker cannot run with."""


@dataclass(frozen=True)
class AssistanceStandard:
    """R8: suggested amount = min(cap, rate * max(0, rolling - deductible)), in fen."""

    deductible_fen: int
    rate: Decimal
    cap_fen: int


@dataclass(frozen=True)
class RuleParams:
    """The parameters the pure rules read; the same object serves worker and backtest."""

    medical_tiers_fen: tuple[int, ...] = (3_000_000, 5_000_000)
    household_tiers_fen: tuple[int, ...] = (3_000_000, 5_000_000)
    standard: AssistanceStandard = AssistanceStandard(1_000_000, Decimal("0.5"), 3_000_000)
    post_death_grace_days: int = 1
    exclusive_programs: tuple[tuple[str, str], ...] = (("dibao", "tekun"), ("disability_living", "tekun"))


@dataclass(frozen=True)
class Settings:
    broker: str = "kafka://127.0.0.1:9092"
    web_port: int = 6066
    web_host: str = "0.0.0.0"
    canonical_url: str = ""
    data_dir: str = "./data"
    partitions: int = 4
    replication_factor: int = 1
    standby_replicas: int = 1
    app_id: str = "benefit-integrity"
    max_record_bytes: int = 65536
    api_token: str | None = None
    log_level: str = "info"
    log_format: str = "text"
    #: Faust's own Prometheus monitor (events, sends, table operations) beside ours.
    faust_metrics: bool = True
    #: ``tansu`` turns on the workarounds for the local broker (see BROKER.md);
    #: ``auto`` picks them when the broker is on a loopback address.
    broker_compat: str = "auto"
    #: ``false`` runs Faust as released, without ``stream_app/faust_patches.py`` (diagnosis only:
    #: it brings back the defects the patches fix).
    faust_patches: bool = True
    #: The most input records handled as one batch (outputs sent together, each person's
    #: state written once, then all acknowledged). A batch takes only records already
    #: fetched, never waiting for more; 1 handles one record at a time.
    max_batch_records: int = 500
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str = "SCRAM-SHA-512"
    sasl_username: str | None = None
    sasl_password: str | None = field(default=None, repr=False)
    ssl_cafile: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    topics: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_TOPICS))
    rules: RuleParams = RuleParams()

    # -- derived values -------------------------------------------------

    def topic(self, name: str) -> str:
        return self.topics[name]

    @property
    def bootstrap_servers(self) -> list[str]:
        """``host:port`` list for plain Kafka clients (kafka-python, aiokafka)."""
        servers = []
        for part in self.broker.replace(",", ";").split(";"):
            part = part.strip()
            if not part:
                continue
            parsed = urlparse(part if "://" in part else f"kafka://{part}")
            servers.append(f"{parsed.hostname}:{parsed.port or 9092}")
        return servers

    @property
    def local_broker_workarounds(self) -> bool:
        if self.broker_compat == "tansu":
            return True
        if self.broker_compat == "kafka":
            return False
        return all(s.split(":")[0] in ("127.0.0.1", "localhost", "::1") for s in self.bootstrap_servers)

    @property
    def web_url(self) -> str:
        return self.canonical_url or f"http://{socket.gethostname()}:{self.web_port}"


# -- parsing helpers ------------------------------------------------------


def parse_money_fen(text: str, name: str) -> int:
    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        raise SettingsError(f"{name}: {text!r} is not an amount of yuan") from None
    if not value.is_finite() or value < 0 or (value * 100) != (value * 100).to_integral_value():
        raise SettingsError(f"{name}: {text!r} must be a non-negative amount with at most 2 decimals")
    return int(value * 100)


def parse_tiers(text: str, name: str) -> tuple[int, ...]:
    tiers = sorted({parse_money_fen(part, name) for part in text.split(",") if part.strip()})
    if not tiers or tiers[0] <= 0:
        raise SettingsError(f"{name}: {text!r} must list one or more positive amounts, e.g. 30000,50000")
    return tuple(tiers)


def parse_standard(text: str, name: str) -> AssistanceStandard:
    parts = text.split(":")
    if len(parts) != 3:
        raise SettingsError(f"{name}: {text!r} must be deductible:rate:cap, e.g. 10000:0.5:30000")
    try:
        rate = Decimal(parts[1])
    except InvalidOperation:
        raise SettingsError(f"{name}: rate {parts[1]!r} is not a number") from None
    if not rate.is_finite() or rate < 0:
        raise SettingsError(f"{name}: rate {parts[1]!r} must be a non-negative number")
    return AssistanceStandard(parse_money_fen(parts[0], name), rate, parse_money_fen(parts[2], name))


def parse_pairs(text: str, name: str) -> tuple[tuple[str, str], ...]:
    pairs: set[tuple[str, str]] = set()
    for part in text.split(","):
        if not part.strip():
            continue
        names = [p.strip() for p in part.split(":")]
        if len(names) != 2 or not all(names) or names[0] == names[1]:
            raise SettingsError(f"{name}: {part!r} must be two different programs, e.g. dibao:tekun")
        first, second = sorted(names)
        pairs.add((first, second))
    return tuple(sorted(pairs))


def parse_whole(text: str, name: str, minimum: int = 0) -> int:
    try:
        value = int(text)
    except ValueError:
        raise SettingsError(f"{name}: {text!r} is not a whole number") from None
    if value < minimum:
        raise SettingsError(f"{name}: {value} must be at least {minimum}")
    return value


def _int(env: Mapping[str, str], key: str, default: int, minimum: int = 0) -> int:
    raw = env.get(PREFIX + key)
    if raw is None or raw == "":
        return default
    return parse_whole(raw, PREFIX + key, minimum)


def _choice(env: Mapping[str, str], key: str, default: str, choices: tuple[str, ...]) -> str:
    raw = env.get(PREFIX + key) or default
    if raw not in choices:
        raise SettingsError(f"{PREFIX}{key}: {raw!r} must be one of {', '.join(choices)}")
    return raw


def load(env: Mapping[str, str] | None = None) -> Settings:
    """Build the one Settings object from the environment (or a mapping, in tests)."""
    env = os.environ if env is None else env
    get = lambda key, default=None: env.get(PREFIX + key) or default  # noqa: E731

    password = get("SASL_PASSWORD")
    password_file = get("SASL_PASSWORD_FILE")
    if password_file:
        try:
            with open(password_file, encoding="utf-8") as fh:
                password = fh.read().strip()
        except OSError as exc:
            raise SettingsError(f"{PREFIX}SASL_PASSWORD_FILE: cannot read {password_file}: {exc}") from None

    topics = {name: get(f"TOPIC_{name}", default) for name, default in DEFAULT_TOPICS.items()}
    defaults = RuleParams()
    rules = RuleParams(
        medical_tiers_fen=parse_tiers(get("MEDICAL_TIERS", "30000,50000"), PREFIX + "MEDICAL_TIERS"),
        household_tiers_fen=parse_tiers(get("HOUSEHOLD_TIERS", "30000,50000"), PREFIX + "HOUSEHOLD_TIERS"),
        standard=parse_standard(
            get("ASSISTANCE_STANDARD", "10000:0.5:30000"), PREFIX + "ASSISTANCE_STANDARD"
        ),
        post_death_grace_days=_int(env, "POST_DEATH_GRACE_DAYS", defaults.post_death_grace_days),
        exclusive_programs=parse_pairs(
            get("EXCLUSIVE_PROGRAMS", "dibao:tekun,tekun:disability_living"),
            PREFIX + "EXCLUSIVE_PROGRAMS",
        ),
    )
    settings = Settings(
        broker=get("BROKER", Settings.broker),
        web_port=_int(env, "WEB_PORT", Settings.web_port, 1),
        web_host=get("WEB_HOST", Settings.web_host),
        canonical_url=get("CANONICAL_URL", ""),
        data_dir=get("DATA_DIR", Settings.data_dir),
        partitions=_int(env, "PARTITIONS", Settings.partitions, 1),
        replication_factor=_int(env, "REPLICATION_FACTOR", Settings.replication_factor, 1),
        standby_replicas=_int(env, "STANDBY_REPLICAS", Settings.standby_replicas, 0),
        app_id=get("APP_ID", Settings.app_id),
        max_record_bytes=_int(env, "MAX_RECORD_BYTES", Settings.max_record_bytes, 1),
        api_token=get("API_TOKEN"),
        log_level=_choice(env, "LOG_LEVEL", "info", ("debug", "info", "warning", "error")),
        log_format=_choice(env, "LOG_FORMAT", "text", ("text", "json")),
        faust_metrics=_choice(env, "FAUST_METRICS", "true", ("true", "false")) == "true",
        broker_compat=_choice(env, "BROKER_COMPAT", "auto", ("auto", "tansu", "kafka")),
        faust_patches=_choice(env, "FAUST_PATCHES", "true", ("true", "false")) == "true",
        max_batch_records=_int(env, "MAX_BATCH_RECORDS", Settings.max_batch_records, 1),
        security_protocol=_choice(
            env, "SECURITY_PROTOCOL", "PLAINTEXT", ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
        ),
        sasl_mechanism=_choice(
            env, "SASL_MECHANISM", "SCRAM-SHA-512", ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
        ),
        sasl_username=get("SASL_USERNAME"),
        sasl_password=password,
        ssl_cafile=get("SSL_CAFILE"),
        ssl_certfile=get("SSL_CERTFILE"),
        ssl_keyfile=get("SSL_KEYFILE"),
        topics=topics,
        rules=rules,
    )
    if settings.security_protocol.startswith("SASL") and not (
        settings.sasl_username and settings.sasl_password
    ):
        raise SettingsError(
            f"{PREFIX}SECURITY_PROTOCOL={settings.security_protocol} needs "
            f"{PREFIX}SASL_USERNAME and {PREFIX}SASL_PASSWORD (or {PREFIX}SASL_PASSWORD_FILE)"
        )
    return settings
