"""Settings as an operator sets them: defaults, parsing, errors that name the variable."""

from __future__ import annotations

import shutil
import ssl
import subprocess
from decimal import Decimal
from pathlib import Path

import pytest

from stream_app.security import faust_credentials, kafka_python_config
from stream_app.settings import SettingsError, load


def test_defaults_are_the_contracts():
    s = load({})
    assert s.broker == "kafka://127.0.0.1:9092" and s.web_port == 6066 and s.data_dir == "./data"
    assert s.partitions == 4 and s.max_record_bytes == 65536 and s.api_token is None
    assert s.rules.medical_tiers_fen == (3_000_000, 5_000_000)
    assert s.rules.household_tiers_fen == (3_000_000, 5_000_000)
    assert (s.rules.standard.deductible_fen, s.rules.standard.rate, s.rules.standard.cap_fen) == (
        1_000_000,
        Decimal("0.5"),
        3_000_000,
    )
    assert s.rules.post_death_grace_days == 1
    assert s.rules.exclusive_programs == (("dibao", "tekun"), ("disability_living", "tekun"))
    assert s.topic("PAYMENT_STOPS") == "payment.stops.v1" and s.topic("DEADLETTER") == "deadletter.v1"
    assert s.local_broker_workarounds  # loopback broker


def test_settings_are_read_from_stream_app_variables():
    s = load(
        {
            "STREAM_APP_MEDICAL_TIERS": "50000, 20000.50",
            "STREAM_APP_ASSISTANCE_STANDARD": "5000:0.75:20000",
            "STREAM_APP_EXCLUSIVE_PROGRAMS": "tekun:dibao",
            "STREAM_APP_TOPIC_PAYMENT_STOPS": "stops.test",
            "STREAM_APP_BROKER": "kafka://k1:9093;kafka://k2:9093",
            "STREAM_APP_API_TOKEN": "t",
        }
    )
    assert s.rules.medical_tiers_fen == (2_000_050, 5_000_000)
    assert s.rules.standard.rate == Decimal("0.75") and s.rules.standard.cap_fen == 2_000_000
    assert s.rules.exclusive_programs == (("dibao", "tekun"),)
    assert s.topic("PAYMENT_STOPS") == "stops.test" and s.api_token == "t"
    assert s.bootstrap_servers == ["k1:9093", "k2:9093"] and not s.local_broker_workarounds


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("MEDICAL_TIERS", "lots"),
        ("MEDICAL_TIERS", "-1"),
        ("MEDICAL_TIERS", "0.001"),
        ("ASSISTANCE_STANDARD", "1:2"),
        ("ASSISTANCE_STANDARD", "1:x:3"),
        ("EXCLUSIVE_PROGRAMS", "dibao"),
        ("EXCLUSIVE_PROGRAMS", "dibao:dibao"),
        ("PARTITIONS", "0"),
        ("WEB_PORT", "http"),
        ("LOG_FORMAT", "xml"),
        ("BROKER_COMPAT", "maybe"),
        ("SECURITY_PROTOCOL", "SASL_SSL"),  # without credentials
    ],
)
def test_bad_setting_is_refused_naming_the_variable(name, value):
    with pytest.raises(SettingsError, match=f"STREAM_APP_{name}"):
        load({f"STREAM_APP_{name}": value})


def test_max_batch_records_defaults_to_500_and_1_is_one_record_at_a_time():
    assert load({}).max_batch_records == 500
    assert load({"STREAM_APP_MAX_BATCH_RECORDS": "1"}).max_batch_records == 1
    for bad in ("0", "many"):
        with pytest.raises(SettingsError, match="STREAM_APP_MAX_BATCH_RECORDS"):
            load({"STREAM_APP_MAX_BATCH_RECORDS": bad})


def test_sasl_password_can_come_from_a_file(tmp_path: Path):
    secret = tmp_path / "password"
    secret.write_text("hunter2\n")
    s = load(
        {
            "STREAM_APP_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
            "STREAM_APP_SASL_USERNAME": "worker",
            "STREAM_APP_SASL_PASSWORD_FILE": str(secret),
        }
    )
    assert s.sasl_password == "hunter2" and "hunter2" not in repr(s)
    config = kafka_python_config(s)
    assert (config["security_protocol"], config["sasl_mechanism"]) == ("SASL_PLAINTEXT", "SCRAM-SHA-512")
    assert (config["sasl_plain_username"], config["sasl_plain_password"]) == ("worker", "hunter2")
    credentials = faust_credentials(s)
    assert credentials is not None
    assert credentials.username == "worker" and credentials.mechanism.value == "SCRAM-SHA-512"


@pytest.fixture
def ca_file(tmp_path: Path) -> Path:
    openssl = shutil.which("openssl")
    assert openssl, "openssl is needed to make a test certificate"
    key, cert = tmp_path / "ca.key", tmp_path / "ca.pem"
    subprocess.run(
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=test-ca",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return cert


def sasl_ssl_env(ca_file: Path, **extra: str) -> dict[str, str]:
    """A production-like setting: Strimzi's TLS listener with SCRAM."""
    return {
        "STREAM_APP_BROKER": "kafka://kafka-bootstrap.kafka.svc:9093",
        "STREAM_APP_SECURITY_PROTOCOL": "SASL_SSL",
        "STREAM_APP_SASL_USERNAME": "benefit-integrity",
        "STREAM_APP_SASL_PASSWORD": "pw",
        "STREAM_APP_SSL_CAFILE": str(ca_file),
        **extra,
    }


def test_sasl_ssl_builds_tls_context_for_faust_and_plain_clients(ca_file: Path):
    s = load(sasl_ssl_env(ca_file))
    credentials = faust_credentials(s)
    assert credentials is not None
    assert isinstance(credentials.ssl_context, ssl.SSLContext)
    assert credentials.ssl_context.verify_mode == ssl.CERT_REQUIRED and credentials.ssl_context.check_hostname
    config = kafka_python_config(s)
    assert config["security_protocol"] == "SASL_SSL" and isinstance(config["ssl_context"], ssl.SSLContext)
    assert config["bootstrap_servers"] == ["kafka-bootstrap.kafka.svc:9093"]


def test_plaintext_has_no_credentials():
    assert faust_credentials(load({})) is None
    assert kafka_python_config(load({}))["security_protocol"] == "PLAINTEXT"


def test_worker_app_takes_the_credentials(ca_file: Path, tmp_path: Path):
    from stream_app.app import create_app

    app, _ = create_app(load(sasl_ssl_env(ca_file, STREAM_APP_DATA_DIR=str(tmp_path))))
    assert app.conf.broker_credentials.username == "benefit-integrity"
    assert app.conf.broker_session_timeout != 10.0  # no local-broker workaround against real Kafka
