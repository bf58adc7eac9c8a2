"""Supply chain: known vulnerabilities in the runtime dependencies, as pinned and installed in .venv.

The runtime closure (the pins of ``pyproject.toml`` and what pip resolved under them; not the
dev tools) goes to pip-audit (pinned in the dev extra) with ``--vulnerability-service pypi``.
Where PyPI answers no per-release JSON (``pypi.org/pypi/NAME/VERSION/json``: 404 on these
machines and in CI, which reach the package registries only; OSV is not reachable at all),
pip-audit skips every package and would say "No known vulnerabilities found". That is caught:
the check falls back to the project JSON (``pypi.org/pypi/NAME/json``), whose
``vulnerabilities`` are exact for a pin that is the latest release, and names the pins it
could not audit in a WARNING. Findings always fail, unless listed in IGNORED with a reason.

Usage: ``.venv/bin/python scripts/audit.py`` (``scripts/test`` runs it). Findings on stdout,
progress and warnings on stderr. Exit 0: no known vulnerability found; 1: findings.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
import urllib.request
from importlib import metadata

from packaging.requirements import Requirement

PROJECT = "benefit-integrity"
#: Vulnerability id -> why it does not apply to us (reviewed; pinned by id). None today.
IGNORED: dict[str, str] = {}


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def runtime_pins() -> dict[str, str]:
    """Name -> installed version of every runtime dependency, direct and transitive."""
    pins: dict[str, str] = {}

    def walk(requirement: str, extras: tuple[str, ...] = ("",)) -> None:
        req = Requirement(requirement)
        if req.marker and not any(req.marker.evaluate({"extra": e}) for e in extras):
            return
        dist = metadata.distribution(req.name)
        name = canonical(dist.metadata["Name"])
        if name in pins:
            return
        pins[name] = dist.version
        for child in dist.requires or []:
            walk(child, ("", *req.extras))

    for requirement in metadata.distribution(PROJECT).requires or []:
        walk(requirement)
    return dict(sorted(pins.items()))


def pip_audit(pins: dict[str, str]) -> dict | None:
    """pip-audit's JSON report, or None when it could not reach its service."""
    with tempfile.NamedTemporaryFile("w", suffix=".txt") as reqs:
        reqs.write("".join(f"{name}=={version}\n" for name, version in pins.items()))
        reqs.flush()
        command = [sys.executable, "-m", "pip_audit", "-r", reqs.name, "--no-deps", "--disable-pip"]
        command += ["--vulnerability-service", "pypi", "--format", "json", "--progress-spinner", "off"]
        for vuln_id in IGNORED:
            command += ["--ignore-vuln", vuln_id]
        result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    try:
        return json.loads(result.stdout)
    except ValueError:
        last = (result.stderr.strip().splitlines() or ["no output"])[-1]
        print(f"audit: WARNING: pip-audit could not reach its vulnerability service: {last}", file=sys.stderr)
        return None


def project_json(name: str) -> dict | None:
    try:
        with urllib.request.urlopen(f"https://pypi.org/pypi/{name}/json", timeout=20) as resp:
            return json.load(resp)
    except (OSError, ValueError):
        return None


def main() -> int:
    pins = runtime_pins()
    print(f"audit: {len(pins)} runtime dependencies (pinned and installed)", file=sys.stderr)
    findings: list[str] = []
    unaudited: list[str] = []
    report = pip_audit(pins)
    skipped = [d for d in (report or {}).get("dependencies", []) if d.get("skip_reason")]
    for dep in (report or {}).get("dependencies", []):
        for vuln in dep.get("vulns", []):
            fixed = ", ".join(vuln.get("fix_versions") or []) or "no fix yet"
            findings.append(f"{dep['name']} {dep['version']}: {vuln['id']} (fixed in {fixed})")
    if report is None or skipped:
        print(
            f"audit: pip-audit had no per-release data for {len(skipped) if report else len(pins)} of "
            f"{len(pins)} packages (pypi.org/pypi/NAME/VERSION/json not served here); checking the "
            "project JSON instead, exact for pins that are the latest release",
            file=sys.stderr,
        )
        names = {canonical(d["name"]) for d in skipped} if report else set(pins)
        for name in sorted(names):
            data = project_json(name)
            if data is None or data["info"]["version"] != pins[name]:
                latest = data["info"]["version"] if data else "unknown"
                unaudited.append(f"{name} {pins[name]} (latest {latest})")
                continue
            for vuln in data.get("vulnerabilities") or []:
                if vuln["id"] not in IGNORED:
                    fixed = ", ".join(vuln.get("fixed_in") or []) or "no fix yet"
                    findings.append(f"{name} {pins[name]}: {vuln['id']} (fixed in {fixed})")
    for vuln_id, reason in IGNORED.items():
        print(f"audit: ignored {vuln_id}: {reason}", file=sys.stderr)
    for line in findings:
        print(line)
    if unaudited:
        print(
            f"audit: WARNING: {len(unaudited)} pins could not be audited here (no vulnerability data "
            f"for their release is reachable): {', '.join(unaudited)}",
            file=sys.stderr,
        )
    if findings:
        print(f"audit: {len(findings)} known vulnerabilities", file=sys.stderr)
        return 1
    print(f"audit: no known vulnerability in {len(pins) - len(unaudited)} audited pins", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
