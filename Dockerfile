# crawlfleet: one image for the workers, the CLI (`crawlfleet seed`, `status`, ...) and the
# compose e2e test web. ENTRYPOINT is the `crawlfleet` command.
#
#   docker build -t crawlfleet .
#   docker build --build-arg PIP_INDEX_URL=https://mirror.example/simple -t crawlfleet .
ARG PYTHON_IMAGE=python:3.12-slim
FROM ${PYTHON_IMAGE}

# Where pip finds packages at build time (a mirror or a wheelhouse); empty means pip's defaults.
# They are only read by the two RUNs that install, never baked into the image's environment.
ARG PIP_INDEX_URL
ARG PIP_FIND_LINKS
ARG PIP_NO_INDEX

ENV PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_ROOT_USER_ACTION=ignore

# The runtime user, and /data owned by it: a fresh named volume mounted on /data takes this
# ownership, so the workers can write there without running as root.
RUN groupadd --system --gid 10001 crawlfleet \
 && useradd --system --uid 10001 --gid crawlfleet --create-home --home-dir /home/crawlfleet \
        --shell /usr/sbin/nologin crawlfleet \
 && mkdir -p /data \
 && chown crawlfleet:crawlfleet /data

# Dependencies first, resolved from pyproject.toml alone: this layer is rebuilt only when
# pyproject.toml changes, not when the source does.
COPY pyproject.toml /src/
RUN set -eu; \
    for var in PIP_INDEX_URL PIP_FIND_LINKS PIP_NO_INDEX; do \
        eval "value=\${$var:-}"; \
        if [ -n "$value" ]; then export "$var=$value"; else unset "$var"; fi; \
    done; \
    python -c 'import tomllib; f = open("/src/pyproject.toml", "rb"); print("\n".join(tomllib.load(f)["project"]["dependencies"]))' \
        > /tmp/requirements.txt; \
    python -m pip install -r /tmp/requirements.txt; \
    rm /tmp/requirements.txt

# The project itself (README.md is optional: `README.md*` matches it when it exists).
COPY pyproject.toml README.md* /src/
COPY shared /src/shared
COPY scheduler /src/scheduler
COPY workers /src/workers
RUN set -eu; \
    for var in PIP_INDEX_URL PIP_FIND_LINKS PIP_NO_INDEX; do \
        eval "value=\${$var:-}"; \
        if [ -n "$value" ]; then export "$var=$value"; else unset "$var"; fi; \
    done; \
    python -m pip install --no-deps /src; \
    rm -rf /src; \
    crawlfleet --help > /dev/null

ENV CRAWLFLEET_DATA_DIR=/data
WORKDIR /data
USER 10001:10001

ENTRYPOINT ["crawlfleet"]
CMD ["--help"]
