"""Monitoring: the PrometheusRule's rules pass `promtool check rules` and the
unit tests in k8s/monitoring/alerts.test.yaml (`promtool test rules`); every
alert is actionable (severity, summary, description, runbook anchor that
exists in docs/operations.md); the Grafana dashboard parses and its queries
are valid PromQL.

Every metric and label that the rules, their unit tests and the dashboard
use is one the worker really exposes: the worker's registry is built here,
in-process, exactly as the worker builds it (``Metrics()`` plus Faust's
monitor series from ``faust_metrics``), and its sample names (``*_total``,
``*_bucket``/``_sum``/``_count``) and label names are the reference. No hand-kept
list of names to drift from the code.
"""

from __future__ import annotations

import functools
import json
import re
import shutil
from collections.abc import Set as AbstractSet
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.deploy

REPO = Path(__file__).resolve().parents[2]
MONITORING = REPO / "k8s" / "monitoring"
RULE_FILE = MONITORING / "prometheusrule.yaml"
RULE_TESTS = MONITORING / "alerts.test.yaml"
DASHBOARD = MONITORING / "dashboards" / "benefit-integrity.json"
OPERATIONS = REPO / "docs" / "operations.md"

OUR_PREFIX = "benefit_integrity_"
FAUST_PREFIX = "benefit_integrity_faust_"

# Labels Prometheus adds to every scraped series (PodMonitor target labels);
# `up` is Prometheus's own series per target.
SCRAPE_LABELS = {"job", "namespace", "pod", "instance", "container", "endpoint", "service"}
PROMETHEUS_SERIES = {"up": frozenset[str]()}

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


@functools.lru_cache(maxsize=1)
def worker_metrics() -> tuple[dict[str, frozenset[str]], dict[str, str]]:
    """(sample name -> its label names, exposed metric name -> type) of the
    worker's registry. Labelled metrics have no samples until a child exists,
    so one child is made for each (the label values do not matter here)."""
    from prometheus_client.metrics import MetricWrapperBase

    from stream_app.metrics import Metrics
    from stream_app.observability import faust_metrics

    m = Metrics()
    engine = faust_metrics(m)
    # Faust's series come wrapped: a millisecond histogram adapter, label-caching proxies.
    unwrapped = [getattr(x, "histogram", None) or getattr(x, "metric", None) for x in engine]
    candidates = [*vars(m).values(), *engine, *unwrapped]
    for c in candidates:
        if isinstance(c, MetricWrapperBase) and c._labelnames:
            c.labels(*("x" for _ in c._labelnames))
    samples: dict[str, frozenset[str]] = {}
    exposed: dict[str, str] = {}
    for family in m.registry.collect():
        assert family.samples, f"{family.name}: no samples (a labelled metric not reachable from Metrics?)"
        exposed[f"{family.name}_total" if family.type == "counter" else family.name] = family.type
        for sample in family.samples:
            samples[sample.name] = frozenset(sample.labels)
    return samples, exposed


def known_series() -> dict[str, frozenset[str]]:
    return {**worker_metrics()[0], **PROMETHEUS_SERIES}


def test_worker_registry_is_what_a_scrape_shows() -> None:
    """Spot checks against a real scrape of `stream-app worker` (names and labels)."""
    samples, exposed = worker_metrics()
    assert samples["benefit_integrity_dead_letters_total"] == {"topic", "error_class"}
    assert samples["benefit_integrity_duplicate_records_total"] == {"topic"}
    assert samples["benefit_integrity_consumer_lag_records"] == {"topic", "partition"}
    assert samples["benefit_integrity_processing_latency_seconds_bucket"] == {"topic", "le"}
    assert samples["benefit_integrity_table_recovery_seconds"] == frozenset()
    assert samples["benefit_integrity_faust_total_error_messages_sent_total"] == frozenset()
    assert samples["benefit_integrity_faust_events_runtime_seconds_bucket"] == {"le"}
    assert exposed["benefit_integrity_rebalances_total"] == "counter"
    assert not [n for n in samples if n.endswith("_created")], "created series are disabled"
    assert all(n.startswith(OUR_PREFIX) for n in samples)


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


def label_names(expr: str) -> set[str]:
    """Label names an expression relies on: in matchers and in by/without/on/ignoring/group_x."""
    labels = set(re.findall(r'([A-Za-z_][A-Za-z0-9_]*)\s*(?:=~|!~|!=|=)\s*"', expr))
    for m in re.finditer(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)", expr):
        labels |= {w.strip() for w in m.group(1).split(",") if w.strip()}
    return labels


def unknown_metrics_and_labels(
    expr: str, extra_labels: AbstractSet[str] = frozenset()
) -> tuple[set[str], set[str]]:
    """Metric names in expr the worker does not expose, and labels that none
    of the expression's metrics (nor the scrape) carry."""
    series = known_series()
    names = metric_names(expr)
    unknown = names - set(series)
    allowed = set(SCRAPE_LABELS).union(*(series[n] for n in names & set(series)))
    return unknown, (label_names(expr) | extra_labels) - allowed


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
    assert label_names('sum by (namespace, topic) (rate(a{job="j", le!="x"}[5m])) / on(pod) b') == {
        "namespace",
        "topic",
        "job",
        "le",
        "pod",
    }


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


def _template_labels(text: str) -> set[str]:
    return set(re.findall(r"\$labels\.([A-Za-z_][A-Za-z0-9_]*)", text))


def test_rules_use_only_worker_metrics_and_labels(yaml_mod: Any) -> None:
    """Every metric an alert selects is a sample the worker registers, and every
    label it groups, matches or prints in its annotations is one those series carry."""
    for group in _spec(yaml_mod)["groups"]:
        for r in group["rules"]:
            name = r.get("alert", r.get("record"))
            used = _template_labels(" ".join(r.get("annotations", {}).values()))
            unknown, bad_labels = unknown_metrics_and_labels(r["expr"], used)
            assert metric_names(r["expr"]), f"{name}: no metric in {r['expr']!r}"
            assert not unknown, f"{name} uses metrics the worker does not expose: {unknown}"
            assert not bad_labels, f"{name} uses labels its series do not have: {bad_labels}"
            assert 'job="benefit-integrity"' in r["expr"], f'{name}: select job="benefit-integrity"'


def _series_selector(text: str) -> tuple[str, dict[str, str]]:
    m = re.fullmatch(r"\s*([A-Za-z_:][A-Za-z0-9_:]*)\s*(?:\{(.*)\})?\s*", text)
    assert m, f"cannot parse series {text!r}"
    labels = dict(re.findall(r'([A-Za-z_][A-Za-z0-9_]*)\s*=\s*"([^"]*)"', m.group(2) or ""))
    return m.group(1), labels


def test_alert_unit_tests_feed_real_series(yaml_mod: Any) -> None:
    """The input series of alerts.test.yaml are named and labelled as a scrape of the worker is."""
    series = known_series()
    problems = []
    for t in yaml_mod.safe_load(RULE_TESTS.read_text())["tests"]:
        for inp in t.get("input_series", []):
            name, labels = _series_selector(inp["series"])
            if name not in series:
                problems.append(f"{t['name']}: {name} is not a series the worker exposes")
                continue
            own = set(labels) - SCRAPE_LABELS
            if own != series[name]:
                problems.append(
                    f"{t['name']}: {name} has labels {sorted(own)}, the worker's {sorted(series[name])}"
                )
            if name != "up" and labels.get("job") != "benefit-integrity":
                problems.append(f"{t['name']}: {name} without job=benefit-integrity")
    assert not problems, "\n".join(problems)


def _dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


def _dashboard_targets() -> list[tuple[str, str, str]]:
    """(panel title, expr, legendFormat) of every query, rows' nested panels included."""
    out = []

    def walk(panels: list[dict[str, Any]]) -> None:
        for p in panels:
            walk(p.get("panels", []))
            for t in p.get("targets", []):
                out.append((p["title"], t["expr"], t.get("legendFormat", "")))

    walk(_dashboard()["panels"])
    assert out, "dashboard has no queries"
    return out


def _dashboard_exprs() -> list[tuple[str, str]]:
    return [(title, expr) for title, expr, _ in _dashboard_targets()]


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


def test_dashboard_uses_only_worker_metrics_and_labels() -> None:
    """Every metric a panel queries is a sample the worker registers; every label
    it groups, matches or shows in a legend is one of those series' labels."""
    used: set[str] = set()
    for title, expr, legend in _dashboard_targets():
        names = metric_names(expr)
        assert names, f"{title}: no metric in {expr!r}"
        legend_labels = set(re.findall(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}", legend or ""))
        unknown, bad_labels = unknown_metrics_and_labels(expr, legend_labels)
        assert not unknown, f"{title}: metrics the worker does not expose: {unknown}"
        assert not bad_labels, f"{title}: labels its series do not have: {bad_labels}"
        used |= names
    required = {
        "benefit_integrity_records_consumed_total",
        "benefit_integrity_consumer_lag_records",
        "benefit_integrity_warnings_total",
        "benefit_integrity_payment_stops_total",
        "benefit_integrity_dead_letters_total",
        "benefit_integrity_duplicate_records_total",
        "benefit_integrity_processing_latency_seconds_bucket",
    }
    assert required <= used, f"dashboard lacks {required - used}"


def test_every_worker_metric_is_on_the_dashboard_or_in_an_alert(yaml_mod: Any) -> None:
    """Each of our own series (not Faust's) is looked at somewhere."""
    used = {n for _, expr, _ in _dashboard_targets() for n in metric_names(expr)}
    used |= {n for g in _spec(yaml_mod)["groups"] for r in g["rules"] for n in metric_names(r["expr"])}
    samples, exposed = worker_metrics()
    ours = {n for n in exposed if not n.startswith(FAUST_PREFIX)}

    def seen(metric: str) -> bool:
        return any(u == metric or (u.startswith(metric + "_") and u in samples) for u in used)

    assert not {n for n in ours if not seen(n)}, "unused: " + str(sorted(n for n in ours if not seen(n)))


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


def _doc_metric_rows() -> dict[str, str]:
    """Metric name -> its table row, for rows of docs/operations.md whose first cell is a `metric`."""
    rows = {}
    for line in OPERATIONS.read_text().splitlines():
        m = re.match(r"\|\s*`([a-z_:]+)`\s*\|", line)
        if m:
            rows[m.group(1)] = line
    return rows


def test_operations_doc_explains_every_metric() -> None:
    """A table row per metric the worker exposes, named as a query types it
    (counters with `_total`), and no row for a metric that does not exist."""
    assert OPERATIONS.exists(), "docs/operations.md is missing"
    rows = _doc_metric_rows()
    _, exposed = worker_metrics()
    missing = sorted(set(exposed) - set(rows))
    assert not missing, f"docs/operations.md has no table row for {missing}"
    stale = sorted(n for n in rows if n.startswith(OUR_PREFIX) and n not in exposed)
    assert not stale, f"docs/operations.md describes metrics the worker does not have: {stale}"


def test_operations_doc_gives_each_metric_its_labels() -> None:
    samples, exposed = worker_metrics()
    rows = _doc_metric_rows()
    wrong = []
    for name, kind in exposed.items():
        sample = f"{name}_bucket" if kind == "histogram" else name
        labels = samples[sample] - {"le"}
        cells = [c.strip() for c in rows.get(name, "").split("|")]
        documented = set(re.findall(r"`([a-z_]+)`", cells[3])) if len(cells) > 3 else set()
        if documented != labels:
            wrong.append(f"{name}: doc says {sorted(documented)}, worker has {sorted(labels)}")
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("doc", ["../README.md", *sorted(p.name for p in (REPO / "docs").glob("*.md"))])
def test_doc_links_resolve(doc: str) -> None:
    """Relative links of the README and between the docs, anchors included."""
    docs_dir = REPO / "docs"
    if doc == "../README.md":
        docs_dir, doc = REPO, "README.md"
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
