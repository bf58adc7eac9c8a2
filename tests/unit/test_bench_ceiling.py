"""The Faust-limit agent (``scripts/faust-ceiling``) runs Faust as released or as the worker runs it."""

from __future__ import annotations

import pytest
from faust.transport import consumer as faust_consumer

from stream_app import bench_ceiling, faust_patches
from stream_app.settings import load


def _settings(tmp_path):
    return load({"STREAM_APP_BROKER": "kafka://127.0.0.1:9092", "STREAM_APP_DATA_DIR": str(tmp_path)})


def test_per_event_mode_is_faust_as_released_and_batched_mode_the_worker_s_hand_off(tmp_path):
    patched_before = faust_consumer.Consumer.wait_first is faust_patches._wait_first
    try:
        bench_ceiling.create_app(_settings(tmp_path), "per-event")
        assert faust_consumer.Consumer.wait_first is faust_patches._original_wait_first
        app = bench_ceiling.create_app(_settings(tmp_path), "batched")
        assert faust_consumer.Consumer.wait_first is faust_patches._wait_first
        assert isinstance(app.agents["ceiling"].channel.schema, faust_patches.RawSchema)
    finally:  # as the other tests of this process had them
        faust_patches.install() if patched_before else faust_patches.uninstall()


def test_an_unknown_mode_is_refused_with_the_modes_named(tmp_path):
    with pytest.raises(SystemExit, match="per-event, batched"):
        bench_ceiling.create_app(_settings(tmp_path), "fast")
