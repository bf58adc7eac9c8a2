"""Checks on what the worker emitted: schema validity and exact counts."""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator, FormatChecker

from stream_app.settings import DEFAULT_TOPICS
from stream_app.topology import TOPIC

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"


@cache
def validator(logical: str) -> Draft202012Validator:
    schema = json.loads((SCHEMAS / f"{DEFAULT_TOPICS[logical]}.json").read_text())
    return Draft202012Validator(schema, format_checker=FormatChecker())


def assert_valid(logical: str, records: list[dict[str, Any]]) -> None:
    for record in records:
        value = {k: v for k, v in record.items() if k != "_key"}
        errors = [e.message for e in validator(logical).iter_errors(value)]
        assert not errors, f"{logical} record breaks its schema: {errors}\n{value}"


_HOUSEHOLD_TOPIC = TOPIC["HOUSEHOLD_SETTLEMENTS"].default


def consumed_total(metrics_text: str, household: bool = False) -> float:
    """Records the worker consumed from the input topics (``household``: from the internal
    household topic instead, whose records the worker sends itself)."""
    return sum(
        float(m.group(2))
        for m in re.finditer(
            r'^benefit_integrity_records_consumed_total\{topic="([^"]*)"\} (\S+)$', metrics_text, re.M
        )
        if m.group(1).endswith(_HOUSEHOLD_TOPIC) == household
    )
