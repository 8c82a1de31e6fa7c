# syntax=docker/dockerfile:1
# The dispatcher image: `dispatcher run` (the worker) by default, `dispatcher api` for intake.
#
#   docker build -t dispatcher .
#   docker run -v ./dispatcher.toml:/etc/dispatcher/dispatcher.toml:ro dispatcher
#   docker build --target fakes -t dispatcher-fakes .   # the fake providers, for deploy/compose.yaml
#
# Validated offline by `make deploy-check` (hadolint) and tests/deploy/test_dockerfile.py, which runs
# this file's ENTRYPOINT + CMD against a local stack.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# -- build: a virtualenv holding the dispatcher and its dependencies, pinned by constraints.txt.
FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
WORKDIR /src
RUN python -m venv /opt/dispatcher
COPY pyproject.toml constraints.txt README.md ./
COPY dispatcher/ dispatcher/
COPY providers/ providers/
COPY strategies/ strategies/
RUN /opt/dispatcher/bin/pip install --no-cache-dir -c constraints.txt . \
 && /opt/dispatcher/bin/pip check

# -- fakes: the fake SendGrid and Mailgun servers (dispatcher.dev.fakes, installed with the
# package), for the compose stack.
FROM ${PYTHON_IMAGE} AS fakes
COPY --from=build /opt/dispatcher /opt/dispatcher
WORKDIR /app
ENV PATH=/opt/dispatcher/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
USER 10001:10001
ENTRYPOINT ["python", "-m", "dispatcher.dev.fakes"]
CMD ["sendgrid", "--host", "0.0.0.0", "--port", "8025"]

# -- runtime: the virtualenv on a clean slim base, run as an unprivileged user. /etc/dispatcher is
# the user's so that a config written at start (ECS: deploy/terraform/ecs.tf) lands there.
FROM ${PYTHON_IMAGE} AS runtime
RUN groupadd --system --gid 10001 dispatcher \
 && useradd --system --uid 10001 --gid dispatcher --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin dispatcher \
 && mkdir -p /etc/dispatcher /var/lib/dispatcher \
 && chown dispatcher:dispatcher /etc/dispatcher /var/lib/dispatcher
COPY --from=build /opt/dispatcher /opt/dispatcher
# The journal keeps outcomes that Redis could not take at shutdown (README: "A stop while Redis
# is away"); the next start records them. Keep it on a volume that outlives the container.
ENV PATH=/opt/dispatcher/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    DISPATCHER_DISPATCH__JOURNAL_PATH=/var/lib/dispatcher/journal.jsonl
VOLUME ["/var/lib/dispatcher"]
WORKDIR /var/lib/dispatcher
USER 10001:10001
# 9100: the worker's [metrics] port (/healthz, /readyz, /metrics); 8080: `dispatcher api`.
EXPOSE 9100 8080
# No curl in the image: the standard library asks. HEALTHCHECK_URL (not DISPATCHER_*, which the
# config parser reads) points it elsewhere, e.g. at the API's port.
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request as u; u.build_opener(u.ProxyHandler({})).open(os.environ.get('HEALTHCHECK_URL', 'http://127.0.0.1:9100/healthz'), timeout=4)"]
# Exec form: dispatcher is PID 1 and receives SIGTERM itself, then drains and exits 0.
ENTRYPOINT ["dispatcher"]
CMD ["run", "--config", "/etc/dispatcher/dispatcher.toml"]
