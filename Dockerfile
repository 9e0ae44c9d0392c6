# CodeFlow images. Stages, in order (build one with --target; the last, `server`, is the default):
#   relay       codeflow-client alone, statically linked (musl): dev containers copy it with
#               COPY --from=<this image> /codeflow-client /usr/local/bin/codeflow-client
#   dev-node, dev-python
#               example dev containers (Node, Python) with the relay, used by docker-compose.yml
#   server-full the server with every default language server (adds Go's gopls, rust-analyzer)
#   server      the server with the language servers for Python, TypeScript/JavaScript, C/C++
#               and shell, at pinned versions; non-root; data on the /data volume
#
#   docker build -t codeflow-server .
#   docker run -p 3000:3000 -v codeflow-data:/data -e CODEFLOW_JWT_SECRET=... codeflow-server
#   docker build --target relay -t codeflow-relay .
# docker-compose.yml runs the server with two dev containers; docs/operations.md has the rest.

ARG RUST_VERSION=1.88
ARG NODE_IMAGE=node:22-bookworm-slim
ARG PYTHON_IMAGE=python:3.12-slim-bookworm

# ---- the server, built against the runtime's glibc ------------------------------------------
FROM rust:${RUST_VERSION}-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p codeflow-server

# ---- the relay, static (musl), so it runs in any distribution's container -------------------
FROM rust:${RUST_VERSION}-alpine AS relay-build
RUN apk add --no-cache musl-dev
WORKDIR /src
COPY . .
RUN CARGO_PROFILE_RELEASE_STRIP=symbols cargo build --release --locked -p codeflow-client

FROM scratch AS relay
COPY --from=relay-build /src/target/release/codeflow-client /codeflow-client
ENTRYPOINT ["/codeflow-client"]

# ---- example dev containers for docker-compose.yml -------------------------------------------
FROM ${NODE_IMAGE} AS dev-node
COPY --from=relay /codeflow-client /usr/local/bin/codeflow-client
WORKDIR /workspace
# the image's `node` user
USER 1000:1000
ENTRYPOINT ["codeflow-client"]

FROM ${PYTHON_IMAGE} AS dev-python
COPY --from=relay /codeflow-client /usr/local/bin/codeflow-client
RUN useradd --uid 1000 --user-group --create-home dev
WORKDIR /workspace
USER 1000:1000
ENTRYPOINT ["codeflow-client"]

# ---- language servers on Node, at pinned versions ---------------------------------------------
FROM ${NODE_IMAGE} AS node-servers
# typescript-language-server needs the `typescript` package; TypeScript 7 never answers: keep 6.
ARG TYPESCRIPT_LANGUAGE_SERVER_VERSION=5.3.0
ARG TYPESCRIPT_VERSION=6.0.3
ARG BASH_LANGUAGE_SERVER_VERSION=5.8.1
# basedpyright answers Python references, renames and call hierarchy beside pylsp.
ARG BASEDPYRIGHT_VERSION=1.40.0
# The rest of the default table's npm servers (the same pins as scripts/install-language-servers.sh).
ARG VSCODE_LANGSERVERS_EXTRACTED_VERSION=4.10.0
ARG YAML_LANGUAGE_SERVER_VERSION=1.25.0
ARG DOCKERFILE_LANGUAGE_SERVER_VERSION=0.15.0
ARG INTELEPHENSE_VERSION=1.18.5
ARG VIM_LANGUAGE_SERVER_VERSION=2.3.1
ARG SVELTE_LANGUAGE_SERVER_VERSION=0.18.4
ARG PRISMA_LANGUAGE_SERVER_VERSION=31.12.10
RUN npm install --global --prefix /opt/node-servers --no-fund --no-audit \
      "typescript-language-server@${TYPESCRIPT_LANGUAGE_SERVER_VERSION}" \
      "typescript@${TYPESCRIPT_VERSION}" \
      "bash-language-server@${BASH_LANGUAGE_SERVER_VERSION}" \
      "basedpyright@${BASEDPYRIGHT_VERSION}" \
      "vscode-langservers-extracted@${VSCODE_LANGSERVERS_EXTRACTED_VERSION}" \
      "yaml-language-server@${YAML_LANGUAGE_SERVER_VERSION}" \
      "dockerfile-language-server-nodejs@${DOCKERFILE_LANGUAGE_SERVER_VERSION}" \
      "intelephense@${INTELEPHENSE_VERSION}" \
      "vim-language-server@${VIM_LANGUAGE_SERVER_VERSION}" \
      "svelte-language-server@${SVELTE_LANGUAGE_SERVER_VERSION}" \
      "@prisma/language-server@${PRISMA_LANGUAGE_SERVER_VERSION}"

# ---- the server's runtime ---------------------------------------------------------------------
FROM debian:bookworm-slim AS server-base
ARG PYLSP_VERSION=1.15.0
ARG FORTLS_VERSION=3.2.2
# clangd comes from the Debian release (bookworm: clangd 14); pylsp (and fortls, Fortran's
# server) live in their own venv.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates python3 python3-venv clangd \
 && rm -rf /var/lib/apt/lists/* \
 && python3 -m venv /opt/pylsp \
 && /opt/pylsp/bin/pip install --no-cache-dir "python-lsp-server[pyflakes]==${PYLSP_VERSION}" \
      "fortls==${FORTLS_VERSION}" \
 && ln -s /opt/pylsp/bin/pylsp /usr/local/bin/pylsp \
 && ln -s /opt/pylsp/bin/fortls /usr/local/bin/fortls
COPY --from=node-servers /usr/local/bin/node /usr/local/bin/node
COPY --from=node-servers /opt/node-servers /opt/node-servers
COPY --from=build /src/target/release/codeflow-server /usr/local/bin/codeflow-server
RUN useradd --uid 10001 --user-group --create-home --home-dir /home/codeflow codeflow \
 && mkdir -p /data \
 && chown codeflow:codeflow /data
# Listening beyond loopback requires auth: set CODEFLOW_JWT_SECRET. Configure the image by
# environment (or a --config file), not flags: the health check reads the same settings.
ENV PATH=/opt/node-servers/bin:$PATH \
    CODEFLOW_BIND=0.0.0.0 \
    CODEFLOW_PORT=3000 \
    CODEFLOW_DATA_DIR=/data \
    CODEFLOW_REQUIRE_AUTH=true \
    CODEFLOW_LOG_FORMAT=json
VOLUME ["/data"]
EXPOSE 3000
USER 10001:10001
HEALTHCHECK --interval=15s --timeout=5s --start-period=10s --retries=3 \
  CMD ["codeflow-server", "healthcheck"]
ENTRYPOINT ["codeflow-server"]

# ---- every default language server: adds gopls and rust-analyzer (a much larger image) ---------
FROM rust:${RUST_VERSION}-bookworm AS rust-analyzer
RUN rustup component add rust-analyzer rust-src

FROM server-base AS server-full
USER 0:0
# rust-analyzer runs cargo and builds proc macros: it needs the toolchain and a C linker.
RUN apt-get update \
 && apt-get install -y --no-install-recommends golang-go gopls gcc libc6-dev \
 && rm -rf /var/lib/apt/lists/*
COPY --from=rust-analyzer /usr/local/rustup /usr/local/rustup
COPY --from=rust-analyzer /usr/local/cargo/bin /usr/local/cargo/bin
ENV RUSTUP_HOME=/usr/local/rustup \
    CARGO_HOME=/home/codeflow/.cargo \
    PATH=/usr/local/cargo/bin:$PATH
USER 10001:10001

# ---- the default image --------------------------------------------------------------------------
FROM server-base AS server
