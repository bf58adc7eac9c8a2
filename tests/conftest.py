"""Suite-wide options: long fault tests run only when asked (``--run-long``, ``scripts/fault-tests``)."""

from __future__ import annotations

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--run-long", action="store_true", help="also run tests marked long (minutes each)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--run-long"):
        return
    skip = pytest.mark.skip(reason="long fault test: run with --run-long (scripts/fault-tests)")
    for item in items:
        if "long" in item.keywords:
            item.add_marker(skip)
