"""The files in ``schemas/``: one valid JSON Schema per contract topic, open for input
(unknown fields are ignored) and closed for output, with examples the worker accepts."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from stream_app.records import decode_rekeyed
from stream_app.settings import DEFAULT_TOPICS
from stream_app.topology import INTERNAL_TOPICS, TOPIC
from tests.contract_schemas import (
    CONTRACT_TOPICS,
    INPUT_TOPICS,
    OUTPUT_TOPICS,
    SCHEMA_DIR,
    TOPIC_TYPE,
    decoded,
    ecma,
    schema,
    schema_errors,
)


def test_schema_files_are_one_per_contract_topic_and_internal_topic():
    internal = [TOPIC[logical].default for logical in INTERNAL_TOPICS]
    assert sorted(p.name for p in SCHEMA_DIR.glob("*.json")) == sorted(
        f"{t}.json" for t in (*CONTRACT_TOPICS, *internal)
    )
    assert set(DEFAULT_TOPICS.values()) == set(CONTRACT_TOPICS).union(internal)


@pytest.mark.parametrize("logical", INTERNAL_TOPICS)
def test_internal_schema_is_valid_and_its_examples_decode(logical):
    name = TOPIC[logical].default
    doc = schema(name)
    Draft202012Validator.check_schema(doc)
    for example in doc["examples"]:
        assert schema_errors(name, example) == []
        raw = json.dumps(example).encode()
        rec = decode_rekeyed(example["household_id"].encode(), raw, 65536)
        assert isinstance(rec, TOPIC[logical].value_type), rec


@pytest.mark.parametrize("topic", CONTRACT_TOPICS)
def test_schema_file_is_a_valid_draft_2020_12_schema(topic):
    doc = schema(topic)
    Draft202012Validator.check_schema(doc)
    assert doc["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert doc["$id"] == f"https://benefit-integrity.example/schemas/{topic}.json"
    assert doc["title"] and doc["description"]
    assert doc["type"] == "object"
    # Every pattern is a valid ECMA-262-compatible regex (and compiles here).
    for pattern in _all_values(doc, "pattern"):
        ecma(pattern)


@pytest.mark.parametrize("topic", INPUT_TOPICS)
def test_input_schema_allows_unknown_fields(topic):
    assert schema(topic)["additionalProperties"] is True


@pytest.mark.parametrize("topic", OUTPUT_TOPICS)
def test_output_schema_is_closed(topic):
    doc = schema(topic)
    assert doc.get("additionalProperties") is False or doc.get("unevaluatedProperties") is False


def test_person_id_description_says_the_check_character_is_not_expressible():
    for topic in CONTRACT_TOPICS[:7]:
        text = schema(topic)["$defs"]["personId"]["description"]
        assert "ISO 7064 MOD 11-2" in text and "cannot express" in text


@pytest.mark.parametrize("topic", INPUT_TOPICS)
def test_input_schema_examples_are_accepted_by_schema_and_decode(topic):
    examples = schema(topic)["examples"]
    assert examples
    for example in examples:
        value = json.loads(json.dumps(example, default=str))
        assert schema_errors(topic, value) == []
        assert isinstance(decoded(topic, value), TOPIC_TYPE[topic])


def _all_values(node: Any, keyword: str) -> Iterator[str]:
    if isinstance(node, dict):
        for name, child in node.items():
            if name == keyword and isinstance(child, str):
                yield child
            else:
                yield from _all_values(child, keyword)
    elif isinstance(node, list):
        for child in node:
            yield from _all_values(child, keyword)
