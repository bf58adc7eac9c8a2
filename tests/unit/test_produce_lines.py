"""``stream-app produce``'s reading of one line: a bare value or a kcat -J line."""

from __future__ import annotations

import json

import pytest

from stream_app.tools import parse_line
from tests.builders import person, settlement_value

VALUE = settlement_value("e1", person(1), "2020-01-10T09:00:00+08:00", "100")


def test_kcat_line_goes_to_its_topic_with_its_key():
    line = json.dumps({"topic": "medical.settlements.v1", "key": "k1", "payload": VALUE})
    topic, key, value = parse_line(line, None)
    assert (topic, key, json.loads(value)) == ("medical.settlements.v1", b"k1", VALUE)


def test_kcat_line_without_topic_goes_to_the_topic_given():
    topic, _, _ = parse_line(json.dumps({"payload": VALUE}), "medical.settlements.v1")
    assert topic == "medical.settlements.v1"


@pytest.mark.parametrize("line", [json.dumps({"payload": VALUE}), json.dumps(VALUE)], ids=["kcat", "bare"])
def test_line_without_any_topic_is_refused_naming_the_option(line):
    with pytest.raises(ValueError, match="--topic"):
        parse_line(line, None)
