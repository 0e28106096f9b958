# syntax=docker/dockerfile:1
#
# tagwatch's container image: `docker build -t tagwatch .`
#
# Both stages are Debian 12 (bookworm), so the binary runs against the same
# glibc and OpenSSL it was linked with.

# Base images are pinned by digest as well as tag, so a rebuild uses the
# same bytes until someone bumps them on purpose; the tag says what the
# digest is. Bump both together: `docker buildx imagetools inspect
# rust:1.95-slim-bookworm` (and debian:bookworm-slim below) prints the
# index digest. tests/deploy.rs checks every FROM is pinned.
FROM rust:1.95-slim-bookworm@sha256:d7482085ff5b415f84dba5647ae71606650bdef00db7aeb69f4b3d170c3e4082 AS build
WORKDIR /src
# pkg-config and libssl-dev: git2 and the openssl crate link the system
# OpenSSL (libssl.so.3, libcrypto.so.3). libgit2 and libssh2 are built from
# their bundled sources; zlib too, or linked as libz.so.1, which every
# Debian image has. make: C build scripts. Versions are not pinned, so each
# image build takes bookworm's security updates.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends pkg-config libssl-dev make \
 && rm -rf /var/lib/apt/lists/*

# Dependencies first, in their own layer: build them against stub targets
# with the real Cargo.toml and Cargo.lock, so a change under src/ reuses
# this layer and recompiles only tagwatch. Every target Cargo.toml declares
# needs a stub, or cargo refuses the manifest (tests/deploy.rs checks this).
COPY Cargo.toml Cargo.lock ./
RUN mkdir -p src benches \
 && echo 'fn main() {}' > src/main.rs \
 && touch src/lib.rs \
 && echo 'fn main() {}' > benches/policy.rs \
 && echo 'fn main() {}' > benches/manifest.rs \
 && cargo build --release --locked \
 && rm -rf src benches

COPY src ./src
COPY benches ./benches
# COPY keeps the files' own modification times, which may be older than the
# stub build's outputs; touching them makes cargo rebuild tagwatch itself
# instead of shipping the stub.
RUN find src benches -name '*.rs' -exec touch {} + \
 && cargo build --release --locked \
 && cp target/release/tagwatch /usr/local/bin/tagwatch

# Run: debian:12-slim (bookworm-slim) plus CA certificates (ECR, GitHub and
# GitLab are TLS) and libssl3. Not distroless/cc-debian12: its library set
# is fixed by another project's build, while the binary needs bookworm's
# libssl3 and zlib1g exactly; copying .so files from the build stage works
# until the next OpenSSL fix, which apt here brings with every image build.
# zlib1g, libgcc-s1 and glibc are already in the slim image.
FROM debian:bookworm-slim@sha256:abd67ffcfa541b485a3dff59865ab629aa048a6c613e639d36e7456b0b229241
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates libssl3 \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /usr/local/bin/tagwatch /usr/local/bin/tagwatch
# Fails the image build if a shared library the binary needs is missing.
RUN ["/usr/local/bin/tagwatch", "--version"]
# A numeric user, so Kubernetes' runAsNonRoot can verify it without
# /etc/passwd; 65532 is distroless's "nonroot", a common convention.
USER 65532:65532
EXPOSE 9090
ENTRYPOINT ["tagwatch"]
CMD ["run", "--config", "/etc/tagwatch/tagwatch.toml"]
