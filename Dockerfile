# syntax=docker/dockerfile:1
FROM python:3.11-slim AS build
WORKDIR /src
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
# The locked versions (requirements/run.txt, hash-checked; `make lock` writes it), then Parley
# itself with no further dependencies.
COPY requirements/run.txt ./requirements/run.txt
RUN python -m venv /venv && /venv/bin/pip install --require-hashes -r requirements/run.txt
COPY pyproject.toml README.md ./
COPY app ./app
RUN /venv/bin/pip install --no-deps .

FROM python:3.11-slim
ENV PATH=/venv/bin:$PATH PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 ENVIRONMENT=production
RUN useradd --create-home --uid 10001 parley
WORKDIR /app
COPY --from=build /venv /venv
COPY alembic.ini ./
COPY alembic ./alembic
COPY app ./app
USER parley
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=3s --start-period=10s --retries=3 \
  CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=2).status != 200)"
# Migrate, then serve. WEB_CONCURRENCY sets the number of uvicorn workers.
# PROMETHEUS_MULTIPROC_DIR lets /metrics sum every worker's counters.
ENV PROMETHEUS_MULTIPROC_DIR=/tmp/parley-metrics
CMD ["sh", "-c", "rm -rf $PROMETHEUS_MULTIPROC_DIR && mkdir -p $PROMETHEUS_MULTIPROC_DIR && alembic upgrade head && exec uvicorn --factory app.main:create_app --host 0.0.0.0 --port 8000 --proxy-headers --ws-max-size 1048576 --workers ${WEB_CONCURRENCY:-2} --timeout-graceful-shutdown 15"]
