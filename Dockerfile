# The source-persistiq image for the Airbyte platform; how to build, push and
# register it: README, "Static binary and Docker image".
#
# tests/packaging.rs checks this file against metadata.yaml and Cargo.toml;
# no Docker engine is needed for that check.

# Build: the same setup as the README's, so the image's binary is the one
# .ci/run checks (static-pie, at most 2 MiB). A Debian image rather than
# rust:alpine because .cargo/config.toml names musl-gcc, which Alpine lacks.
FROM rust:1.95-slim-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends musl-tools \
 && rm -rf /var/lib/apt/lists/* \
 && rustup target add x86_64-unknown-linux-musl
WORKDIR /src
# Only what the build reads, so that edits to tests or docs keep the cache.
COPY Cargo.toml Cargo.lock ./
COPY .cargo .cargo
COPY src src
COPY schemas schemas
RUN cargo build --release --locked --target x86_64-unknown-linux-musl

# Run: busybox, not scratch, because the platform ignores ENTRYPOINT and runs
# `sh -c` with `sleep` and `kill` around $AIRBYTE_ENTRYPOINT. The binary needs
# nothing from the image: it is static and its TLS roots are compiled in.
FROM busybox:1.37-musl
RUN addgroup -g 1000 airbyte \
 && adduser -D -u 1000 -G airbyte -h /airbyte -s /bin/sh airbyte \
 && mkdir -p /airbyte \
 && chown airbyte:airbyte /airbyte
COPY --from=build /src/target/x86_64-unknown-linux-musl/release/source-persistiq /usr/local/bin/source-persistiq
# The platform changes the working directory, hence absolute paths; it reads
# the command from AIRBYTE_ENTRYPOINT, and CAT checks it equals ENTRYPOINT.
ENV AIRBYTE_ENTRYPOINT="/usr/local/bin/source-persistiq"
ENTRYPOINT ["/usr/local/bin/source-persistiq"]
LABEL io.airbyte.name="ghcr.io/source-persistiq/source-persistiq" \
      io.airbyte.version="0.1.0"
WORKDIR /airbyte
USER airbyte
