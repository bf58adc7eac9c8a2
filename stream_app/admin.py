"""Create the topics the worker reads and writes, with the configured partition count."""

from __future__ import annotations

import logging
import time

from kafka import KafkaAdminClient
from kafka.admin import NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

from stream_app.security import kafka_python_config
from stream_app.settings import Settings
from stream_app.topology import TABLES, changelog_topic

log = logging.getLogger(__name__)


def wanted_topics(settings: Settings) -> list[NewTopic]:
    topics = [
        NewTopic(name, settings.partitions, settings.replication_factor) for name in settings.topics.values()
    ]
    topics += [
        NewTopic(
            changelog_topic(settings.app_id, table.name),
            settings.partitions,
            settings.replication_factor,
            topic_configs={"cleanup.policy": "compact"},
        )
        for table in TABLES
    ]
    return topics


def connect_admin(settings: Settings, wait_s: float | None = 300.0) -> KafkaAdminClient:
    """Connect, retrying with a clear log line while the broker is not reachable yet."""
    deadline = None if wait_s is None else time.monotonic() + wait_s
    delay = 0.5
    while True:
        try:
            # Short bootstrap attempts: a line in our log every few seconds while the broker is
            # away, and a quick start once it is back (the client's own backoff reaches 30 s).
            return KafkaAdminClient(
                client_id=f"{settings.app_id}-admin",
                bootstrap_timeout_ms=5000,
                reconnect_backoff_max_ms=2000,
                **kafka_python_config(settings),
            )
        except (KafkaError, OSError) as exc:
            if deadline is not None and time.monotonic() > deadline:
                raise
            log.warning("broker %s not reachable yet (%s); retrying in %.1fs", settings.broker, exc, delay)
            time.sleep(delay)
            delay = min(delay * 2, 5.0)


def ensure_topics(settings: Settings, wait_s: float | None = 300.0) -> list[str]:
    """Create every missing topic; return the names created. Existing topics are left alone."""
    admin = connect_admin(settings, wait_s)
    try:
        existing = set(admin.list_topics())
        missing = [t for t in wanted_topics(settings) if t.name not in existing]
        created = []
        for topic in missing:
            try:
                admin.create_topics([topic])
                created.append(topic.name)
            except TopicAlreadyExistsError:
                pass  # another worker created it meanwhile
        if created:
            log.info("created topics: %s", ", ".join(created))
        return created
    finally:
        admin.close()
