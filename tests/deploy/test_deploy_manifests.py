"""What the rendered manifests must say, beyond schema validity: the worker's
wiring (services, probes, canonical URL, state volume, secrets by reference),
the production settings, and the Strimzi topics and ACLs. Custom resources,
which have no schema offline, get their fields checked here.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

pytestmark = pytest.mark.deploy

APP = "benefit-integrity"
WEB_PORT = 6066
DATA_DIR = "/var/lib/stream-app"

# The external contract's default topic names (shared/CONTRACT.md).
INPUTS = (
    "medical.settlements.v1",
    "disability.registrations.v1",
    "death.registrations.v1",
    "subsidy.enrollments.v1",
)
OUTPUTS = ("assistance.warnings.v1", "payment.stops.v1", "payment.resumes.v1", "deadletter.v1")
#: The internal re-key topic of R7, provisioned in overlays/production/strimzi with its ACLs.
HOUSEHOLD_SETTLEMENTS = "benefit-integrity-household-settlements"
CHANGELOGS = (
    f"{APP}-person_medical-changelog",
    f"{APP}-person_status-changelog",
    f"{APP}-household_medical-changelog",
)
REKEY = f"{APP}-household-settlements"
LEADER = f"{APP}-__assignor-__leader"  # faust declares it with 1 partition


class _RecordingEnv(dict):
    """An environment that remembers every key the settings loader looks up."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.asked: set[str] = set()

    def get(self, key: str, default: Any = None) -> Any:
        self.asked.add(key)
        return super().get(key, default)

    def __getitem__(self, key: str) -> Any:
        self.asked.add(key)
        return super().__getitem__(key)

    def __contains__(self, key: object) -> bool:
        self.asked.add(str(key))
        return super().__contains__(key)


def settings_read() -> set[str]:
    """Every STREAM_APP_* variable the worker reads: the keys that
    stream_app.settings.load() looks up (with nothing set, so every branch asks)."""
    from stream_app import settings

    env = _RecordingEnv()
    settings.load(env)
    return {k for k in env.asked if k.startswith(settings.PREFIX)}


# Settings the worker reads that the base ConfigMap deliberately leaves out.
NOT_IN_BASE_CONFIGMAP = {
    "STREAM_APP_CANONICAL_URL": "per pod: set in the StatefulSet from the downward API",
    "STREAM_APP_API_TOKEN": "a secret: env from Secret benefit-integrity-api",
    "STREAM_APP_SASL_PASSWORD": "a secret: never in env; STREAM_APP_SASL_PASSWORD_FILE instead",
    "STREAM_APP_SASL_USERNAME": "only with SASL: production overlay",
    "STREAM_APP_SASL_PASSWORD_FILE": "only with SASL: production overlay (mounted Secret)",
    "STREAM_APP_SASL_MECHANISM": "only with SASL: production overlay",
    "STREAM_APP_SSL_CAFILE": "only with TLS: production overlay (mounted Secret)",
    "STREAM_APP_SSL_CERTFILE": "only with mutual TLS (not used by the overlays)",
    "STREAM_APP_SSL_KEYFILE": "only with mutual TLS (not used by the overlays)",
}


def _pod_labels(resources: list[dict[str, Any]], helpers: Any) -> dict[str, str]:
    return helpers.only(resources, "StatefulSet")["spec"]["template"]["metadata"]["labels"]


def _selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def _container(resources: list[dict[str, Any]], helpers: Any) -> dict[str, Any]:
    (c,) = helpers.only(resources, "StatefulSet")["spec"]["template"]["spec"]["containers"]
    return c


def test_no_secret_values_are_shipped(rendered: Any, overlay: str) -> None:
    resources = rendered(overlay)
    assert not [r for r in resources if r["kind"] == "Secret"], "Secrets are created by hand, not shipped"
    for r in resources:
        if r["kind"] == "ConfigMap":
            for key in r.get("data", {}):
                assert not re.search(r"PASSWORD$|TOKEN$|SECRET", key), f"{key} belongs in a Secret"


def test_settings_reader_is_seen() -> None:
    """The recorder sees the loader's look-ups (a guard for the tests below)."""
    read = settings_read()
    assert {"STREAM_APP_BROKER", "STREAM_APP_FAUST_METRICS", "STREAM_APP_TOPIC_DEADLETTER"} <= read
    assert "STREAM_APP_SASL_PASSWORD_FILE" in read


def test_configmaps_carry_only_settings_the_worker_reads(
    rendered: Any, helpers: Any, kustomization: str
) -> None:
    """No key in any settings ConfigMap (base and overlays) nor in the container's
    env is a typo or a setting the worker no longer reads: it would be ignored silently."""
    resources = rendered(kustomization)
    maps = [
        m
        for m in helpers.of_kind(resources, "ConfigMap")
        if m["metadata"]["name"].startswith(f"{APP}-config")
    ]
    if kustomization == "monitoring":
        assert not maps
        return
    read = settings_read()
    keys = set(helpers.config_data(resources))
    (c,) = helpers.only(resources, "StatefulSet")["spec"]["template"]["spec"]["containers"]
    env = {e["name"] for e in c.get("env", []) if e["name"].startswith("STREAM_APP_")}
    assert not (keys | env) - read, f"not read by the worker: {sorted((keys | env) - read)}"
    assert not keys & env, f"set twice (ConfigMap and env): {sorted(keys & env)}"


def test_base_configmap_lists_every_setting(rendered: Any, helpers: Any) -> None:
    """The base ConfigMap shows every non-secret, non-per-pod setting, so a new
    setting in stream_app/settings.py gets a line there (or a reason above)."""
    keys = set(helpers.config_data(rendered("base")))
    expected = settings_read() - set(NOT_IN_BASE_CONFIGMAP)
    assert keys == expected, (
        f"missing from k8s/base: {sorted(expected - keys)}; not expected there: {sorted(keys - expected)}"
    )


def test_worker_accepts_the_settings(rendered: Any, helpers: Any, overlay: str, tmp_path: Any) -> None:
    """Each overlay's ConfigMap (plus the StatefulSet's literal env) loads with the
    worker's own parser: a bad value would stop every pod at start."""
    from stream_app import settings

    resources = rendered(overlay)
    env = helpers.config_data(resources)
    c = _container(resources, helpers)
    env.update({e["name"]: e["value"] for e in c.get("env", []) if "value" in e})
    if "STREAM_APP_SASL_PASSWORD_FILE" in env:  # a mounted Secret in the pod; a stand-in here
        stand_in = tmp_path / "password"
        stand_in.write_text("not-the-password\n")
        env["STREAM_APP_SASL_PASSWORD_FILE"] = str(stand_in)
    loaded = settings.load(env)
    assert loaded.app_id == APP
    assert loaded.faust_metrics is True, "the OutputSendErrors alert and the engine panels need them"
    assert set(loaded.topics.values()) == {*INPUTS, *OUTPUTS, HOUSEHOLD_SETTLEMENTS}


def test_settings_configmap(rendered: Any, helpers: Any, overlay: str) -> None:
    data = helpers.config_data(rendered(overlay))
    assert data["STREAM_APP_APP_ID"] == APP
    assert data["STREAM_APP_DATA_DIR"] == DATA_DIR
    assert data["STREAM_APP_WEB_PORT"] == str(WEB_PORT)
    assert data["STREAM_APP_WEB_HOST"] == "0.0.0.0"
    assert all(url.startswith("kafka://") for url in data["STREAM_APP_BROKER"].split(";"))
    assert int(data["STREAM_APP_PARTITIONS"]) >= 1


def test_local_overlay_settings(rendered: Any, helpers: Any) -> None:
    resources = rendered("overlays/local")
    data = helpers.config_data(resources)
    assert data["STREAM_APP_BROKER_COMPAT"] == "auto"
    assert data["STREAM_APP_REPLICATION_FACTOR"] == "1"
    assert data["STREAM_APP_SECURITY_PROTOCOL"] == "PLAINTEXT"
    assert helpers.only(resources, "StatefulSet")["spec"]["replicas"] == 1


def test_production_overlay_settings(rendered: Any, helpers: Any) -> None:
    resources = rendered("overlays/production")
    data = helpers.config_data(resources)
    assert data["STREAM_APP_BROKER_COMPAT"] == "kafka"
    assert data["STREAM_APP_PARTITIONS"] == "12"
    assert data["STREAM_APP_REPLICATION_FACTOR"] == "3"
    assert data["STREAM_APP_SECURITY_PROTOCOL"] == "SASL_SSL"
    assert data["STREAM_APP_SASL_MECHANISM"] == "SCRAM-SHA-512"
    assert int(data["STREAM_APP_STANDBY_REPLICAS"]) >= 1
    sts = helpers.only(resources, "StatefulSet")
    replicas = sts["spec"]["replicas"]
    assert 2 <= replicas <= int(data["STREAM_APP_PARTITIONS"]), "more workers than partitions sit idle"
    assert int(data["STREAM_APP_STANDBY_REPLICAS"]) < replicas

    # The password and CA files are where the secret volumes are mounted.
    c = _container(resources, helpers)
    mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
    volumes = {v["name"]: v for v in sts["spec"]["template"]["spec"]["volumes"]}
    for setting, volume in (
        ("STREAM_APP_SASL_PASSWORD_FILE", "kafka-user"),
        ("STREAM_APP_SSL_CAFILE", "kafka-ca"),
    ):
        assert data[setting].startswith(mounts[volume] + "/"), (setting, data[setting], mounts[volume])
        secret = volumes[volume]["secret"]
        assert secret["optional"] is False, f"{volume}: production must not start without its Secret"
        assert data[setting].rsplit("/", 1)[1] in ("password", "ca.crt")
    (token,) = [e for e in c["env"] if e["name"] == "STREAM_APP_API_TOKEN"]
    assert token["valueFrom"]["secretKeyRef"]["optional"] is False

    # Kafka is reached on the listener the NetworkPolicy lets through.
    policy = helpers.only(resources, "NetworkPolicy")
    kafka_ports = {
        p["port"]
        for rule in policy["spec"]["egress"]
        for peer in rule.get("to", [])
        if "strimzi.io/cluster" in peer.get("podSelector", {}).get("matchLabels", {})
        for p in rule["ports"]
    }
    broker_ports = {int(u.rsplit(":", 1)[1]) for u in data["STREAM_APP_BROKER"].split(";")}
    assert broker_ports and broker_ports <= kafka_ports, (broker_ports, kafka_ports)


def test_statefulset_wiring(rendered: Any, helpers: Any, overlay: str) -> None:
    resources = rendered(overlay)
    sts = helpers.only(resources, "StatefulSet")
    spec = sts["spec"]
    pod = spec["template"]["spec"]
    labels = _pod_labels(resources, helpers)
    assert _selects(spec["selector"]["matchLabels"], labels)
    assert pod["terminationGracePeriodSeconds"] >= 30, "faust needs time to commit offsets on SIGTERM"
    assert pod["automountServiceAccountToken"] is False

    headless = helpers.only(resources, "Service", spec["serviceName"])
    assert headless["spec"]["clusterIP"] == "None"
    assert headless["spec"].get("publishNotReadyAddresses") is True
    assert _selects(headless["spec"]["selector"], labels)

    c = _container(resources, helpers)
    assert c["args"] == ["worker"]
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert ports == {"web": WEB_PORT}
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "web"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "web"}
    for probe in ("livenessProbe", "readinessProbe"):
        assert c[probe]["timeoutSeconds"] >= 2
    for kind in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(c["resources"][kind]), f"resources.{kind}"

    # Settings come from the generated ConfigMap that is in the same render.
    (ref,) = [e["configMapRef"]["name"] for e in c["envFrom"]]
    helpers.only(resources, "ConfigMap", ref)

    # STREAM_APP_CANONICAL_URL: the pod's own name under the headless service.
    env = c["env"]
    names = [e["name"] for e in env]
    (url,) = [e["value"] for e in env if e["name"] == "STREAM_APP_CANONICAL_URL"]
    assert url == f"http://$(POD_NAME).{spec['serviceName']}.$(POD_NAMESPACE).svc:{WEB_PORT}"
    downward = {
        e["name"]: e["valueFrom"]["fieldRef"]["fieldPath"]
        for e in env
        if "fieldRef" in e.get("valueFrom", {})
    }
    assert downward == {"POD_NAME": "metadata.name", "POD_NAMESPACE": "metadata.namespace"}
    # Kubernetes expands $(VAR) only from variables defined earlier in the list.
    for i, e in enumerate(env):
        for ref_name in re.findall(r"\$\((\w+)\)", e.get("value", "")):
            assert ref_name in names[:i], f"{e['name']} uses $({ref_name}) before it is defined"
    # Secrets only by reference.
    for e in env:
        assert "value" not in e or not re.search(r"TOKEN|PASSWORD", e["name"]), e["name"]
    (token,) = [e for e in env if e["name"] == "STREAM_APP_API_TOKEN"]
    assert token["valueFrom"]["secretKeyRef"]["name"] == f"{APP}-api"

    # RocksDB state on the per-pod claim; /tmp writable.
    (claim,) = spec["volumeClaimTemplates"]
    mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
    assert mounts[DATA_DIR] == claim["metadata"]["name"]
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert "emptyDir" in volumes[mounts["/tmp"]]


def test_services_pdb_and_policies_select_the_workers(rendered: Any, helpers: Any, overlay: str) -> None:
    resources = rendered(overlay)
    labels = _pod_labels(resources, helpers)
    services = helpers.of_kind(resources, "Service")
    assert {s["metadata"]["name"] for s in services} == {APP, f"{APP}-headless"}
    for s in services:
        assert _selects(s["spec"]["selector"], labels), s["metadata"]["name"]
        assert [(p["port"], p["targetPort"]) for p in s["spec"]["ports"]] == [(WEB_PORT, "web")]
    pdb = helpers.only(resources, "PodDisruptionBudget")
    assert _selects(pdb["spec"]["selector"]["matchLabels"], labels)
    assert pdb["spec"]["maxUnavailable"] == 1

    policy = helpers.only(resources, "NetworkPolicy")["spec"]
    assert _selects(policy["podSelector"]["matchLabels"], labels)
    assert set(policy["policyTypes"]) == {"Ingress", "Egress"}
    (ingress,) = policy["ingress"]
    assert [p["port"] for p in ingress["ports"]] == [WEB_PORT]
    sources = ingress["from"]
    assert any(_selects(p.get("podSelector", {}).get("matchLabels", {}), labels) for p in sources)
    assert any(
        p.get("namespaceSelector", {}).get("matchLabels", {}).get("kubernetes.io/metadata.name")
        == "monitoring"
        for p in sources
    )
    egress_ports = {(p.get("protocol", "TCP"), p["port"]) for rule in policy["egress"] for p in rule["ports"]}
    assert {("UDP", 53), ("TCP", 53), ("TCP", WEB_PORT)} <= egress_ports
    assert egress_ports & {("TCP", 9092), ("TCP", 9093)}, "no egress to Kafka"


def test_podmonitor_scrapes_the_web_port(rendered: Any, helpers: Any) -> None:
    resources = rendered("overlays/production")
    labels = _pod_labels(resources, helpers)
    pm = helpers.only(resources, "PodMonitor")
    assert pm["apiVersion"] == "monitoring.coreos.com/v1"
    spec = pm["spec"]
    assert _selects(spec["selector"]["matchLabels"], labels)
    assert labels[spec["jobLabel"]] == APP, 'alerts select job="benefit-integrity"'
    (endpoint,) = spec["podMetricsEndpoints"]
    assert endpoint["port"] == "web" and endpoint["path"] == "/metrics"
    assert set(endpoint) <= {"port", "path", "interval", "scrapeTimeout", "relabelings", "metricRelabelings"}
    rule = helpers.only(resources, "PrometheusRule")
    assert rule["apiVersion"] == "monitoring.coreos.com/v1" and rule["spec"]["groups"]
    dashboard = helpers.only(resources, "ConfigMap", f"{APP}-dashboard")
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"


def _topics(resources: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    out = {}
    for t in resources:
        if t["kind"] == "KafkaTopic":
            name = t["spec"].get("topicName", t["metadata"]["name"])
            assert name not in out, f"two KafkaTopics for {name}"
            out[name] = t
    return out


def test_strimzi_topics(rendered: Any, helpers: Any) -> None:
    resources = rendered("overlays/production")
    data = helpers.config_data(resources)
    partitions, replicas = int(data["STREAM_APP_PARTITIONS"]), int(data["STREAM_APP_REPLICATION_FACTOR"])
    topics = _topics(resources)
    assert set(topics) == {*INPUTS, *OUTPUTS, *CHANGELOGS, REKEY, LEADER}
    for name, t in topics.items():
        assert t["apiVersion"] == "kafka.strimzi.io/v1beta2"
        assert set(t["spec"]) <= {"topicName", "partitions", "replicas", "config"}, name
        assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", t["metadata"]["name"]), t["metadata"]["name"]
        assert t["metadata"]["labels"]["strimzi.io/cluster"], name
        assert t["spec"]["replicas"] == replicas, name
        assert t["spec"]["partitions"] == (1 if name == LEADER else partitions), name
        cfg = t["spec"]["config"]
        assert isinstance(cfg["min.insync.replicas"], int) and 1 <= cfg["min.insync.replicas"] < replicas
        if name in CHANGELOGS:
            assert cfg["cleanup.policy"] == "compact", name
            assert "retention.ms" not in cfg, f"{name}: compacted state must not expire"
        else:
            assert cfg["cleanup.policy"] == "delete", name
        if name in (*INPUTS, *OUTPUTS, REKEY):
            assert cfg["retention.ms"] >= 7 * 86400000, name
    assert (
        topics["deadletter.v1"]["spec"]["config"]["retention.ms"]
        > topics[OUTPUTS[0]]["spec"]["config"]["retention.ms"]
    )
    assert (
        topics[REKEY]["spec"]["config"]["retention.ms"] >= topics[INPUTS[0]]["spec"]["config"]["retention.ms"]
    )


def test_strimzi_topics_cover_what_the_worker_uses(rendered: Any, helpers: Any, tmp_path: Any) -> None:
    """Every topic the worker would create (stream_app.admin.wanted_topics for the
    production settings) has a KafkaTopic with its partitions and cleanup policy:
    in production the worker may not create topics."""
    from stream_app import settings
    from stream_app.admin import wanted_topics

    resources = rendered("overlays/production")
    env = helpers.config_data(resources)
    stand_in = tmp_path / "password"
    stand_in.write_text("x")
    env["STREAM_APP_SASL_PASSWORD_FILE"] = str(stand_in)
    topics = _topics(resources)
    for wanted in wanted_topics(settings.load(env)):
        assert wanted.name in topics, f"no KafkaTopic for {wanted.name}"
        spec = topics[wanted.name]["spec"]
        assert spec["partitions"] == wanted.num_partitions, wanted.name
        assert spec["replicas"] == wanted.replication_factor, wanted.name
        policy = (wanted.topic_configs or {}).get("cleanup.policy", "delete")
        assert spec["config"]["cleanup.policy"] == policy, wanted.name


def test_strimzi_user_has_least_privilege(rendered: Any, helpers: Any) -> None:
    resources = rendered("overlays/production")
    data = helpers.config_data(resources)
    user = helpers.only(resources, "KafkaUser")
    assert user["apiVersion"] == "kafka.strimzi.io/v1beta2"
    assert user["metadata"]["name"] == data["STREAM_APP_SASL_USERNAME"]
    assert user["spec"]["authentication"] == {"type": "scram-sha-512"}
    assert user["spec"]["authorization"]["type"] == "simple"
    grants: dict[tuple[str, str], set[str]] = {}
    for acl in user["spec"]["authorization"]["acls"]:
        res = acl["resource"]
        assert res["patternType"] == "literal", acl
        assert acl.get("type", "allow") == "allow", acl
        assert "operation" not in acl, "use `operations` (the list form)"
        grants.setdefault((res["type"], res["name"]), set()).update(acl["operations"])
    expected = {
        **{("topic", t): {"Describe", "Read"} for t in INPUTS},
        **{("topic", t): {"Describe", "Write"} for t in OUTPUTS},
        **{("topic", t): {"Describe", "Read", "Write"} for t in (*CHANGELOGS, REKEY)},
        ("topic", LEADER): {"Describe", "Read"},
        ("group", data["STREAM_APP_APP_ID"]): {"Read"},
    }
    assert grants == expected
    # Everything granted is a topic the worker actually has a KafkaTopic for.
    assert {n for k, n in grants if k == "topic"} == set(_topics(resources))

    strimzi = [r for r in resources if r["apiVersion"].startswith("kafka.strimzi.io/")]
    assert len({r["metadata"]["namespace"] for r in strimzi}) == 1
    assert len({r["metadata"]["labels"]["strimzi.io/cluster"] for r in strimzi}) == 1
    (cluster,) = {r["metadata"]["labels"]["strimzi.io/cluster"] for r in strimzi}
    (kafka_ns,) = {r["metadata"]["namespace"] for r in strimzi}
    assert f"{cluster}-kafka-bootstrap.{kafka_ns}.svc" in data["STREAM_APP_BROKER"]
    # ... and the NetworkPolicy lets the worker reach exactly that cluster.
    policy = helpers.only(resources, "NetworkPolicy")
    peers = [
        peer
        for rule in policy["spec"]["egress"]
        for peer in rule.get("to", [])
        if "strimzi.io/cluster" in peer.get("podSelector", {}).get("matchLabels", {})
    ]
    assert peers, "production egress should name the Strimzi cluster's pods"
    for peer in peers:
        assert peer["podSelector"]["matchLabels"]["strimzi.io/cluster"] == cluster
        assert peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"] == kafka_ns


def test_namespaces(rendered: Any, helpers: Any, overlay: str) -> None:
    resources = rendered(overlay)
    ns = helpers.only(resources, "Namespace")
    assert ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    for r in resources:
        if r["kind"] != "Namespace" and not r["apiVersion"].startswith("kafka.strimzi.io/"):
            assert r["metadata"].get("namespace") == ns["metadata"]["name"], r["metadata"]["name"]
