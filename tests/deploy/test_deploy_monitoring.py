"""Monitoring: the PrometheusRule's rules pass `promtool check rules` and the
unit tests in k8s/monitoring/alerts.test.yaml (`promtool test rules`); every
alert is actionable (severity, summary, description, runbook anchor that
exists in docs/operations.md); the Grafana dashboard parses, its queries are
valid PromQL, and every query uses only the worker's metrics.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
MONITORING = REPO / "k8s" / "monitoring"
RULE_FILE = MONITORING / "prometheusrule.yaml"
RULE_TESTS = MONITORING / "alerts.test.yaml"
DASHBOARD = MONITORING / "dashboards" / "benefit-integrity.json"
OPERATIONS = REPO / "docs" / "operations.md"

# The worker's metrics (stream_app/metrics.py), as agreed for issue 5.
COUNTERS = {
    "benefit_integrity_records_consumed_total",
    "benefit_integrity_dead_letters_total",
    "benefit_integrity_warnings_total",
    "benefit_integrity_payment_stops_total",
    "benefit_integrity_payment_resumes_total",
    "benefit_integrity_unknown_reversals_total",
    "benefit_integrity_ignored_withdrawals_total",
    "benefit_integrity_rebalances_total",
    "benefit_integrity_internal_errors_total",
}
GAUGES = {
    "benefit_integrity_last_event_timestamp_seconds",
    "benefit_integrity_last_consumed_timestamp_seconds",
    "benefit_integrity_table_persons",
    "benefit_integrity_table_recovery_seconds",
    "benefit_integrity_consumer_lag_records",
    "benefit_integrity_ready",
}
HISTOGRAMS = {"benefit_integrity_processing_latency_seconds", "benefit_integrity_commit_latency_seconds"}
METRICS = COUNTERS | GAUGES | HISTOGRAMS
SERIES = COUNTERS | GAUGES | {f"{h}_{s}" for h in HISTOGRAMS for s in ("bucket", "sum", "count")} | {"up"}

REQUIRED_ALERTS = {
    "BenefitIntegrityWorkersAbsent",
    "BenefitIntegrityWorkerDown",
    "BenefitIntegrityWorkerNotReady",
    "BenefitIntegrityConsumerLagGrowing",
    "BenefitIntegrityDeadLetters",
    "BenefitIntegritySourceFeedSilent",
    "BenefitIntegrityProcessingLatencyHigh",
    "BenefitIntegrityInternalErrors",
}

# PromQL words that look like metric names to the tokenizer below.
PROMQL_WORDS = {
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "and",
    "or",
    "unless",
    "offset",
    "inf",
    "nan",
    "atan2",
}


def _spec(yaml_mod: Any) -> dict[str, Any]:
    return yaml_mod.safe_load(RULE_FILE.read_text())["spec"]


def _alerts(yaml_mod: Any) -> list[dict[str, Any]]:
    return [r for g in _spec(yaml_mod)["groups"] for r in g["rules"] if "alert" in r]


def metric_names(expr: str) -> set[str]:
    """Metric names an expression selects: identifiers that are not
    functions, keywords, label names, or inside strings and durations."""
    s = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'', '""', expr)  # strings
    s = re.sub(r"\{[^}]*\}", "", s)  # label matchers
    s = re.sub(r"\[[^\]]*\]", "", s)  # ranges and subqueries
    s = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", s)
    s = re.sub(r"\$\{?\w+\}?", "", s)  # Grafana variables
    names = set()
    for m in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", s):
        word = m.group(0)
        after = s[m.end() :].lstrip()
        before = s[: m.start()]
        if after.startswith("(") or word.lower() in PROMQL_WORDS or re.search(r"\d$", before):
            continue  # a function call, a keyword, or the unit of a number such as 5m
        names.add(word)
    return names


def test_metric_name_tokenizer() -> None:
    assert metric_names('sum by (topic) (rate(a_total{x="b c"}[5m])) / on(x) b > 6 * 3600') == {
        "a_total",
        "b",
    }
    assert metric_names("histogram_quantile(0.99, sum by (le) (rate(h_bucket[$__rate_interval])))") == {
        "h_bucket"
    }
    assert metric_names("time() - max by (topic) (g)") == {"g"}
    assert metric_names("deriv(sum by (t) (lag)[15m:1m]) > 0 and absent(up == 1)") == {"lag", "up"}


def test_rules_pass_promtool_check(promtool: str, yaml_mod: Any, tmp_path: Path, helpers: Any) -> None:
    rules = tmp_path / "alerts.rules.yaml"
    rules.write_text(yaml_mod.safe_dump(_spec(yaml_mod), sort_keys=False))
    proc = helpers.run([promtool, "check", "rules", str(rules)])
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_alert_unit_tests_pass(promtool: str, yaml_mod: Any, tmp_path: Path, helpers: Any) -> None:
    tests = yaml_mod.safe_load(RULE_TESTS.read_text())
    assert tests["rule_files"] == ["alerts.rules.yaml"]
    (tmp_path / "alerts.rules.yaml").write_text(yaml_mod.safe_dump(_spec(yaml_mod), sort_keys=False))
    shutil.copy(RULE_TESTS, tmp_path / "alerts.test.yaml")
    proc = helpers.run([promtool, "test", "rules", "alerts.test.yaml"], cwd=tmp_path, timeout=90)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_every_alert_is_tested_firing_and_quiet(yaml_mod: Any) -> None:
    tests = yaml_mod.safe_load(RULE_TESTS.read_text())["tests"]
    fired: set[str] = set()
    quiet: set[str] = set()
    for t in tests:
        for case in t.get("alert_rule_test", []):
            (fired if case.get("exp_alerts") else quiet).add(case["alertname"])
    names = {a["alert"] for a in _alerts(yaml_mod)}
    assert names - fired == set(), f"no firing test for {names - fired}"
    assert names - quiet == set(), f"no not-firing test for {names - quiet}"


def _anchors(markdown: str) -> set[str]:
    """GitHub-style heading anchors, plus explicit <a id=...> / {#id}."""
    anchors = set(re.findall(r'<a\s+(?:id|name)="([^"]+)"', markdown))
    for line in markdown.splitlines():
        m = re.match(r"#{1,6}\s+(.*?)\s*$", line)
        if m:
            text = re.sub(r"\s*\{#([^}]+)\}$", "", m.group(1))
            explicit = re.search(r"\{#([^}]+)\}$", m.group(1))
            if explicit:
                anchors.add(explicit.group(1))
            slug = re.sub(r"[^\w\- ]", "", text.strip().lower()).replace(" ", "-")
            anchors.add(slug)
    return anchors


def test_alerts_are_actionable(yaml_mod: Any) -> None:
    alerts = _alerts(yaml_mod)
    names = [a["alert"] for a in alerts]
    assert len(names) == len(set(names)), "duplicate alert names"
    assert set(names) >= REQUIRED_ALERTS, REQUIRED_ALERTS - set(names)
    anchors = _anchors(OPERATIONS.read_text()) if OPERATIONS.exists() else set()
    assert anchors, "docs/operations.md is missing or has no headings"
    for a in alerts:
        assert a["labels"]["severity"] in {"critical", "warning"}, a["alert"]
        ann = a["annotations"]
        assert set(ann) >= {"summary", "description", "runbook_url"}, a["alert"]
        assert len(ann["summary"]) <= 120, f"{a['alert']}: keep the summary to one line"
        url = ann["runbook_url"]
        assert re.fullmatch(r"https://\S+/docs/operations\.md#[a-z0-9-]+", url), url
        anchor = url.rsplit("#", 1)[1]
        assert anchor in anchors, f"{a['alert']}: docs/operations.md has no section #{anchor}"
        assert anchor == a["alert"].lower(), f"{a['alert']}: anchor should be the alert name"


def test_rules_use_only_worker_metrics(yaml_mod: Any) -> None:
    for group in _spec(yaml_mod)["groups"]:
        for r in group["rules"]:
            unknown = metric_names(r["expr"]) - SERIES
            assert not unknown, f"{r.get('alert', r.get('record'))} uses unknown metrics {unknown}"
            assert 'job="benefit-integrity"' in r["expr"], f'{r.get("alert")}: select job="benefit-integrity"'


def _dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


def _dashboard_exprs() -> list[tuple[str, str]]:
    out = []

    def walk(panels: list[dict[str, Any]]) -> None:
        for p in panels:
            walk(p.get("panels", []))
            for t in p.get("targets", []):
                out.append((p["title"], t["expr"]))

    walk(_dashboard()["panels"])
    return out


def test_dashboard_json_is_a_dashboard() -> None:
    d = _dashboard()
    assert d["uid"] and d["title"] and d["schemaVersion"] >= 30
    ids = [p["id"] for p in d["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    variables = {v["name"] for v in d["templating"]["list"]}
    assert {"datasource", "namespace"} <= variables
    for p in d["panels"]:
        if p["type"] != "row":
            assert p["datasource"]["uid"] == "${datasource}", p["title"]
            assert p["targets"], p["title"]
            assert {"h", "w", "x", "y"} <= set(p["gridPos"]), p["title"]


def test_dashboard_uses_only_worker_metrics() -> None:
    exprs = _dashboard_exprs()
    assert exprs
    used: set[str] = set()
    for title, expr in exprs:
        names = metric_names(expr)
        assert names, f"{title}: no metric in {expr!r}"
        assert not names - SERIES, f"{title}: unknown metrics {names - SERIES}"
        used |= names
    required = {
        "benefit_integrity_records_consumed_total",
        "benefit_integrity_consumer_lag_records",
        "benefit_integrity_warnings_total",
        "benefit_integrity_payment_stops_total",
        "benefit_integrity_dead_letters_total",
        "benefit_integrity_processing_latency_seconds_bucket",
    }
    assert required <= used, f"dashboard lacks {required - used}"


def test_dashboard_queries_are_valid_promql(
    promtool: str, yaml_mod: Any, tmp_path: Path, helpers: Any
) -> None:
    """promtool has no offline query parser, so each query becomes a
    recording rule (Grafana's variables replaced) for `promtool check rules`."""
    rules = []
    for i, (_, expr) in enumerate(_dashboard_exprs()):
        expr = expr.replace("$__rate_interval", "5m").replace("$__interval", "1m")
        expr = re.sub(r"\$\{?namespace\}?", ".*", expr)
        assert "$" not in expr, f"unhandled Grafana variable in {expr!r}"
        rules.append({"record": f"dashboard:query_{i}", "expr": expr})
    path = tmp_path / "dashboard.rules.yaml"
    path.write_text(yaml_mod.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    proc = helpers.run([promtool, "check", "rules", str(path)])
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_dashboard_configmap_carries_the_file(rendered: Any, helpers: Any) -> None:
    cm = helpers.only(rendered("monitoring"), "ConfigMap", "benefit-integrity-dashboard")
    assert json.loads(cm["data"][DASHBOARD.name]) == _dashboard()


@pytest.mark.parametrize("metric", sorted(METRICS))
def test_operations_doc_explains_every_metric(metric: str) -> None:
    assert OPERATIONS.exists(), "docs/operations.md is missing"
    assert f"`{metric}" in OPERATIONS.read_text(), f"docs/operations.md does not describe {metric}"


@pytest.mark.parametrize("doc", ["deploy.md", "operations.md"])
def test_doc_links_resolve(doc: str) -> None:
    """Relative links between docs/deploy.md and docs/operations.md, anchors included."""
    docs_dir = REPO / "docs"
    text = (docs_dir / doc).read_text()
    broken = []
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+://", target):
            continue
        path, _, anchor = target.partition("#")
        linked = docs_dir / path if path else docs_dir / doc
        if not linked.exists():
            broken.append(target)
            continue
        if anchor and anchor not in _anchors(linked.read_text()):
            broken.append(target)
    assert not broken, f"{doc}: broken links {broken}"
