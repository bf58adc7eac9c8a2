"""Dockerfile and .dockerignore: lint clean, non-root, matching the pods.

No Docker daemon is needed: hadolint lints the file, the rest parses it, and
the build context is re-created from .dockerignore to build the same wheel
`pip install .` builds inside the image.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.deploy

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "Dockerfile"
DATA_DIR = "/var/lib/stream-app"
WEB_PORT = 6066


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined, comments dropped."""
    out: list[tuple[str, str]] = []
    buf = ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not buf and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            buf += line[:-1] + " "
            continue
        buf += line
        word, _, rest = buf.partition(" ")
        out.append((word.upper(), rest.strip()))
        buf = ""
    return out


def _stages() -> list[list[tuple[str, str]]]:
    stages: list[list[tuple[str, str]]] = []
    for ins in _instructions():
        if ins[0] == "FROM":
            stages.append([])
        if stages:
            stages[-1].append(ins)
    return stages


def _final() -> list[tuple[str, str]]:
    return _stages()[-1]


def _last(stage: list[tuple[str, str]], word: str) -> str:
    values = [args for w, args in stage if w == word]
    assert values, f"final stage has no {word}"
    return values[-1]


def test_hadolint_passes(hadolint: str, helpers: Any) -> None:
    proc = helpers.run([hadolint, "--no-color", "--failure-threshold", "info", str(DOCKERFILE)])
    assert proc.returncode == 0 and not proc.stdout.strip(), proc.stdout + proc.stderr


def test_base_images_are_pinned_python_311_slim() -> None:
    froms = [args.split()[0] for stage in _stages() for w, args in stage if w == "FROM"]
    assert len(froms) >= 2, "expected a builder and a runtime stage"
    for image in froms:
        assert re.fullmatch(r"python:3\.11\.\d+-slim(-[a-z]+)?(@sha256:[0-9a-f]{64})?", image), image
    assert len(set(froms)) == 1, f"builder and runtime must share one base (the venv is copied): {froms}"


def test_runtime_stage_runs_as_fixed_numeric_non_root_user() -> None:
    user = _last(_final(), "USER")
    uid, _, gid = user.partition(":")
    assert uid.isdigit() and int(uid) != 0, f"USER must be a numeric non-root uid, not {user!r}"
    assert not gid or (gid.isdigit() and int(gid) != 0), user


def test_runtime_stage_has_no_build_tools_or_source() -> None:
    final = _final()
    runs = " ".join(args for w, args in final if w == "RUN")
    for tool in ("gcc", "build-essential", "make ", "g++", "pip install", "apt-get install"):
        assert tool not in runs, f"runtime stage must not install {tool.strip()}"
    copies = [args for w, args in final if w == "COPY"]
    assert copies and all(c.startswith("--from=") for c in copies), (
        f"runtime stage should only copy the virtualenv from the builder: {copies}"
    )


def test_entrypoint_and_signals() -> None:
    final = _final()
    entrypoint = json.loads(_last(final, "ENTRYPOINT"))  # exec form, or this fails
    assert isinstance(entrypoint, list) and entrypoint[-1].endswith("stream-app"), entrypoint
    assert json.loads(_last(final, "CMD")) == ["worker"]
    assert _last(final, "STOPSIGNAL") == "SIGTERM"
    assert str(WEB_PORT) in _last(final, "EXPOSE").split()
    assert DATA_DIR in _last(final, "VOLUME")
    env = " ".join(args for w, args in final if w == "ENV")
    assert f"STREAM_APP_DATA_DIR={DATA_DIR}" in env


def test_statefulset_runs_as_the_image_user(rendered: Any, helpers: Any, overlay: str) -> None:
    uid, _, gid = _last(_final(), "USER").partition(":")
    sts = helpers.only(rendered(overlay), "StatefulSet")
    pod = sts["spec"]["template"]["spec"]
    psc = pod["securityContext"]
    assert psc["runAsNonRoot"] is True
    assert psc["runAsUser"] == int(uid)
    assert psc["runAsGroup"] == int(gid or uid)
    assert psc["fsGroup"] == int(gid or uid), "fsGroup makes the data volume writable by the image user"
    assert psc["seccompProfile"]["type"] == "RuntimeDefault"
    for c in pod["containers"]:
        sc = c["securityContext"]
        assert sc["runAsNonRoot"] is True
        assert sc.get("runAsUser", psc["runAsUser"]) == int(uid)
        assert sc["readOnlyRootFilesystem"] is True
        assert sc["allowPrivilegeEscalation"] is False
        assert sc["capabilities"]["drop"] == ["ALL"] and not sc["capabilities"].get("add")
        mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
        assert DATA_DIR in mounts, "the image's VOLUME must be backed by the claim"
        assert "/tmp" in mounts, "read-only root filesystem: /tmp needs its own volume"


def _dockerignore_patterns() -> list[tuple[bool, str]]:
    pats = []
    for line in (REPO / ".dockerignore").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        neg = line.startswith("!")
        pats.append((neg, line.lstrip("!").rstrip("/")))
    return pats


def _glob_regex(pattern: str) -> str:
    """Docker's .dockerignore glob: `*` and `?` stay within a path segment,
    `**` spans segments, `[...]` is a character class."""
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        elif pattern[i] == "[" and "]" in pattern[i:]:
            j = pattern.index("]", i)
            out, i = out + pattern[i : j + 1], j + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return out


def _ignored(rel: str, patterns: list[tuple[bool, str]]) -> bool:
    """Docker's rule: the last matching pattern wins; a pattern that matches a
    parent folder matches everything in it."""
    parts = rel.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    ignored = False
    for neg, pat in patterns:
        rx = _glob_regex(pat)
        if any(re.fullmatch(rx, p) for p in prefixes):
            ignored = not neg
    return ignored


def _builder_copy_sources() -> list[str]:
    builder = _stages()[0]
    sources: list[str] = []
    for w, args in builder:
        if w == "COPY" and not args.startswith("--from="):
            sources.extend(args.split()[:-1])
    return sources


def test_build_context_holds_what_the_dockerfile_copies() -> None:
    patterns = _dockerignore_patterns()
    sources = _builder_copy_sources()
    assert "pyproject.toml" in sources
    for src in sources:
        assert (REPO / src).exists(), f"Dockerfile copies {src}, which is not in the repository"
        assert not _ignored(src, patterns), f".dockerignore excludes {src}, which the Dockerfile copies"
        for f in (REPO / src).rglob("*") if (REPO / src).is_dir() else []:
            rel = f.relative_to(REPO).as_posix()
            if "__pycache__" not in rel and f.suffix not in (".pyc", ".pyo"):
                assert not _ignored(rel, patterns), f".dockerignore excludes {rel}"
    for private in (".git", ".venv", "data", "tests", "k8s", ".git/config", ".venv/bin/python"):
        assert _ignored(private, patterns), f".dockerignore lets {private} into the build context"


def test_image_wheel_has_console_script_and_schemas(tmp_path: Path, helpers: Any) -> None:
    """Builds, from a copy of the Docker build context, the wheel that the
    builder stage's `pip install .` installs, and checks it carries what the
    runtime needs: the `stream-app` console script and every file of schemas/."""
    ctx = tmp_path / "context"
    ctx.mkdir()
    for src in _builder_copy_sources():
        path = REPO / src
        assert path.exists(), f"Dockerfile copies {src}, which is not in the repository"
        if path.is_dir():
            shutil.copytree(path, ctx / src, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(path, ctx / src)
    out = tmp_path / "wheel"
    proc = helpers.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "--wheel-dir", str(out), str(ctx)],
        timeout=180,
    )
    assert proc.returncode == 0, f"pip wheel of the build context failed:\n{proc.stdout}\n{proc.stderr}"
    (wheel,) = out.glob("*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    (entry_points,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert re.search(r"^stream-app\s*=", text, re.M), f"no stream-app console script in {wheel.name}:\n{text}"
    schema_files = [p.name for p in (REPO / "schemas").rglob("*") if p.is_file()]
    missing = [s for s in schema_files if not any(n.endswith(f"schemas/{s}") for n in names)]
    assert not missing, (
        f"schemas/ files not in the wheel, so not in the image: {missing}. "
        "Ship them as package data (or data-files) in pyproject.toml."
    )
