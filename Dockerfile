# syntax=docker/dockerfile:1
# Kitchen: one image for every role.  `docker run kitchen` runs all roles in production
# mode (every request needs a merchant's key) on the embedded defaults (SQLite in
# /app/data, in-memory Kafka, mails as .eml files); docker-compose.yml points it at
# PostgreSQL, Kafka and Mailpit.  See docs/containers.md.
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# Dependencies first: this layer is rebuilt only when requirements.txt changes.
COPY requirements.txt ./
RUN pip install -r requirements.txt

# Code is owned by root and read-only for the service; only /app/data is writable.
RUN useradd --system --uid 10001 --user-group --home-dir /app --no-create-home \
        --shell /usr/sbin/nologin kitchen \
 && mkdir -p /app/data/mail \
 && chown -R kitchen:kitchen /app/data

# HEALTHCHECK probe: GET /health on the HTTP port (api role) or on the operations port
# (`KITCHEN_METRICS_PORT`, any other role); a process with neither has nothing to probe
# (deploy/healthcheck.py says how it decides; tests/e2e/test_healthcheck.py runs it).
COPY deploy/healthcheck.py /app/healthcheck.py

COPY settings.toml app.py ./
COPY kitchen/ ./kitchen/

# Container defaults; every KITCHEN_<SECTION>_<KEY> can be overridden at `docker run -e`.
# Production: the container listens on every address, and development mode would answer
# any request without a key as the default merchant (Kitchen refuses to start that way).
ENV KITCHEN_APP_ENV=production \
    KITCHEN_HTTP_HOST=0.0.0.0 \
    KITCHEN_HTTP_PORT=8000 \
    KITCHEN_DATABASE_URL=sqlite:////app/data/kitchen.db \
    KITCHEN_MAIL_FOLDER=/app/data/mail \
    KITCHEN_PAYMENTS_PROVIDER=none

# 10001 is `kitchen`; numeric so that Kubernetes' runAsNonRoot can verify it.
USER 10001:10001

EXPOSE 8000

HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "/app/healthcheck.py"]

CMD ["python", "app.py"]
