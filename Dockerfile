# codeflow-server with the default language servers.
#   docker build -t codeflow .
#   docker run -p 3000:3000 -e CODEFLOW_JWT_SECRET=... codeflow
FROM rust:1.88-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p codeflow-server -p codeflow-client

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates python3 python3-pip nodejs npm \
 && rm -rf /var/lib/apt/lists/*
COPY scripts/install-language-servers.sh /usr/local/bin/
RUN PIP_BREAK_SYSTEM_PACKAGES=1 bash /usr/local/bin/install-language-servers.sh
COPY --from=build /src/target/release/codeflow-server /src/target/release/codeflow-client /usr/local/bin/
RUN useradd --create-home codeflow && mkdir -p /data && chown codeflow /data
USER codeflow
EXPOSE 3000
# Listening beyond loopback requires auth: set CODEFLOW_JWT_SECRET (and CODEFLOW_REQUIRE_AUTH=true).
ENV CODEFLOW_BIND=0.0.0.0 CODEFLOW_DATA_DIR=/data CODEFLOW_REQUIRE_AUTH=true
HEALTHCHECK CMD ["/bin/sh", "-c", "exec 3<>/dev/tcp/127.0.0.1/3000"]
ENTRYPOINT ["codeflow-server"]
