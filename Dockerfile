# Image of the benefit-integrity stream worker (`stream-app worker`).
# Build:  docker build -t benefit-integrity:dev .
# Deploy: see docs/deploy.md. Operations: see docs/operations.md.
#
# Two stages on the same pinned base: the builder installs the project and
# its dependencies (`pip install .`) into a virtualenv at /opt/venv; the
# runtime stage copies only that virtualenv. No compiler, no source tree and
# no pip cache reach the final image.
# Bump the tag below on purpose (and rebuild) to take Debian/CPython security
# fixes; pin a digest (python:3.11.14-slim-bookworm@sha256:...) where the
# registry policy asks for it.

FROM python:3.11.14-slim-bookworm AS builder

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_INPUT=1 \
    PYTHONDONTWRITEBYTECODE=1

RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

WORKDIR /src
# Only what `pip install .` needs (.dockerignore keeps the rest out too).
COPY pyproject.toml README.md ./
COPY stream_app ./stream_app
COPY agents ./agents
COPY schemas ./schemas
# pip byte-compiles while installing, so the runtime never writes .pyc files
# (its root filesystem is read-only in Kubernetes).
RUN pip install --no-cache-dir . \
    && stream-app --help > /dev/null


FROM python:3.11.14-slim-bookworm AS runtime

LABEL org.opencontainers.image.title="benefit-integrity" \
      org.opencontainers.image.description="Benefit-integrity stream processor (Faust worker)" \
      org.opencontainers.image.documentation="docs/deploy.md"

# Fixed numeric uid/gid 10001: k8s/base/statefulset.yaml runs the pod with
# the same ids (runAsUser/runAsGroup/fsGroup) and runAsNonRoot checks that the
# image's USER is numeric and not 0.
RUN groupadd --system --gid 10001 stream-app \
    && useradd --system --uid 10001 --gid 10001 \
       --home-dir /var/lib/stream-app --no-create-home \
       --shell /usr/sbin/nologin stream-app \
    && install -d -o 10001 -g 10001 -m 0750 /var/lib/stream-app

COPY --from=builder /opt/venv /opt/venv

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    STREAM_APP_DATA_DIR=/var/lib/stream-app \
    STREAM_APP_WEB_HOST=0.0.0.0 \
    STREAM_APP_WEB_PORT=6066

WORKDIR /var/lib/stream-app
USER 10001:10001

# RocksDB table state. In Kubernetes a PersistentVolumeClaim per pod is
# mounted here, so a restart only replays the tail of each changelog.
VOLUME ["/var/lib/stream-app"]

# Web server: /metrics, /healthz, /readyz, /persons/{person_id}.
EXPOSE 6066

# faust's Worker stops gracefully on SIGTERM and commits offsets; the exec
# form below makes python PID 1 so the signal reaches it directly.
STOPSIGNAL SIGTERM

# Docker-only liveness check (Kubernetes uses its own probes).
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('STREAM_APP_WEB_PORT', '6066'), timeout=4)"]

ENTRYPOINT ["/opt/venv/bin/stream-app"]
CMD ["worker"]
