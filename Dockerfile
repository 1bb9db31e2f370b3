# orch8 server image: `docker build -t orch8 .` (see docs/deployment.md).
FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /opt/orch8
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install . \
    && useradd --system --uid 10001 --user-group --home-dir /var/lib/orch8 --create-home orch8

USER orch8
WORKDIR /var/lib/orch8

# Listens on every interface, so API-key authentication is expected: pass the root
# key as ORCH8_API_KEY at run time (never baked into the image). The database
# defaults to SQLite in the orch8 user's home (mount a volume there), or set
# ORCH8_DATABASE_URL to PostgreSQL (docker-compose.yml does).
ENV ORCH8_HTTP_ADDR=0.0.0.0:8080 \
    ORCH8_DATABASE_URL=sqlite:///var/lib/orch8/orch8.db \
    ORCH8_LOG_JSON=true
VOLUME ["/var/lib/orch8"]
EXPOSE 8080

# Liveness with the standard library only (no curl in a slim image): any answer
# other than 2xx, or none, fails the check.
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; port = os.environ.get('ORCH8_HTTP_ADDR', '0.0.0.0:8080').rsplit(':', 1)[1]; urllib.request.urlopen(f'http://127.0.0.1:{port}/health/live', timeout=4)"]

# SIGTERM drains (docs/operations.md): give `docker stop -t` more than
# ORCH8_SHUTDOWN_GRACE_PERIOD_SECS (30) plus a few seconds.
STOPSIGNAL SIGTERM
CMD ["orch8", "serve"]
