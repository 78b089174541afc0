# syntax=docker/dockerfile:1
# The amplihack-hive agent image: one agent process per container, hosting the agents named
# by its arguments (the rendered Bicep passes them; see bicep/modules/agent-app.bicep).
#
#   docker build -t myregistry.azurecr.io/amplihack-hive:0.1.0 .
#   az acr build --registry myregistry --image amplihack-hive:0.1.0 .
#
# Both stages use the same base, pinned to an exact Python release on a fixed Debian
# release (change both lines together). For fully reproducible builds also pin its digest:
#   docker buildx imagetools inspect python:3.12.8-slim-bookworm   # then python:...@sha256:...

# --- build: the wheel, exactly as `pip install .` would build it --------------------------
FROM python:3.12.8-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY amplihack_hive ./amplihack_hive
COPY templates ./templates
COPY bicep ./bicep
RUN python -m pip wheel --no-deps --wheel-dir /dist .

# --- runtime: the wheel and its dependencies, no build tools, no source -------------------
FROM python:3.12.8-slim-bookworm
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
COPY --from=build /dist /tmp/dist
RUN python -m pip install /tmp/dist/*.whl \
    && rm -rf /tmp/dist \
    && groupadd --system --gid 10001 hive \
    && useradd --system --uid 10001 --gid hive --home-dir /home/hive --create-home hive \
    && mkdir -p /data \
    && chown hive:hive /data

# Non-root from here on. /data holds the hive directory: Kuzu databases and run records.
# On Container Apps it is an EmptyDir volume (replica-local); Azure Files lacks POSIX locks.
USER 10001:10001
WORKDIR /home/hive
VOLUME ["/data"]
EXPOSE 8080

# The agent answers /health only with the hive token, which it reads from
# $AMPLIHACK_HIVE_TOKEN; so does this check. Port 8080 is the --port the Bicep passes.
# (Container Apps ignore HEALTHCHECK and use the probes of the rendered Bicep.)
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, sys, urllib.request as r; q = r.Request('http://127.0.0.1:8080/health', headers={'Authorization': 'Bearer ' + os.environ.get('AMPLIHACK_HIVE_TOKEN', '')}); sys.exit(0 if r.urlopen(q, timeout=4).status == 200 else 1)"]

ENTRYPOINT ["python", "-m", "amplihack_hive.agent"]
CMD ["--help"]
