# The source-persistiq image for the Airbyte platform; how to build, push and
# register it: README, "The Docker image", and docs/image.md.
#
# tests/packaging.rs checks this file against metadata.yaml and Cargo.toml;
# no Docker engine is needed for that check.

# Build: the same setup as docs/image.md's, so the image's binary is the one
# .ci/run checks (static, at most 2 MiB). A Debian image rather than
# rust:alpine because .cargo/config.toml names Debian's compilers.
#
# One Dockerfile for both platforms: the stage runs on the platform it
# builds for (under emulation on another host), and TARGETARCH, which
# BuildKit and podman set from --platform, picks the Rust target. On arm64
# Debian's gcc is aarch64-linux-gnu-gcc and musl-tools brings musl-dev's
# specs file, the two .cargo/config.toml names for that target.
FROM rust:1.95-slim-bookworm AS build
ARG TARGETARCH
RUN case "$TARGETARCH" in \
      amd64) target=x86_64-unknown-linux-musl ;; \
      arm64) target=aarch64-unknown-linux-musl ;; \
      *) echo "no Rust target for TARGETARCH=$TARGETARCH" >&2; exit 1 ;; \
    esac \
 && echo "$target" >/rust-target \
 && apt-get update \
 && apt-get install -y --no-install-recommends musl-tools \
 && rm -rf /var/lib/apt/lists/* \
 && rustup target add "$target"
WORKDIR /src
# Only what the build reads, so that edits to tests or docs keep the cache.
COPY Cargo.toml Cargo.lock build.rs ./
COPY .cargo .cargo
COPY src src
COPY schemas schemas
# The context has no .git, so build.rs cannot ask git: the commit for
# `--version` comes from here (`--build-arg SPQ_COMMIT=$(git rev-parse
# --short=12 HEAD)`), else it says "unknown". Empty by default, so that a
# build without it (or one whose stage is replaced, as in CI) is not warned.
ARG SPQ_COMMIT=
# The binary is copied to one path for every target, the one the run stage
# reads, beside the empty folder that becomes /airbyte there.
RUN target=$(cat /rust-target) \
 && cargo build --release --locked --target "$target" \
 && mkdir -p target/image/airbyte \
 && cp "target/$target/release/source-persistiq" target/image/source-persistiq

# Run: busybox, not scratch, because the platform ignores ENTRYPOINT and runs
# `sh -c` with `sleep` and `kill` around $AIRBYTE_ENTRYPOINT. The binary needs
# nothing from the image: it is static and its TLS roots are compiled in.
#
# This stage runs nothing (no RUN), so building it needs no emulation for
# the other platform. The user is numeric, uid and gid 1000 as the platform
# runs connectors, with no /etc/passwd entry: Kubernetes can check a numeric
# USER against `runAsNonRoot`, and cannot check a name. COPY --chown makes
# /airbyte, owned by that user.
FROM busybox:1.37-musl
COPY --from=build /src/target/image/source-persistiq /usr/local/bin/source-persistiq
COPY --from=build --chown=1000:1000 /src/target/image/airbyte /airbyte
# The platform changes the working directory, hence absolute paths; it reads
# the command from AIRBYTE_ENTRYPOINT, and CAT checks it equals ENTRYPOINT.
ENV AIRBYTE_ENTRYPOINT="/usr/local/bin/source-persistiq" \
    HOME=/airbyte
ENTRYPOINT ["/usr/local/bin/source-persistiq"]
LABEL io.airbyte.name="ghcr.io/source-persistiq/source-persistiq" \
      io.airbyte.version="0.2.0"
WORKDIR /airbyte
USER 1000:1000
