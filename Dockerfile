# syntax=docker/dockerfile:1
# Build: dependencies are compiled in their own layer, so a source change
# rebuilds only tagwatch itself.
FROM rust:1.95-bookworm AS build
WORKDIR /src
RUN apt-get update && apt-get install -y --no-install-recommends pkg-config libssl-dev && rm -rf /var/lib/apt/lists/*
COPY Cargo.toml Cargo.lock ./
RUN mkdir -p src benches && echo 'fn main() {}' > src/main.rs && echo '' > src/lib.rs && echo 'fn main() {}' > benches/policy.rs \
 && cargo build --release --locked && rm -rf src benches
COPY src ./src
COPY benches ./benches
RUN touch src/main.rs src/lib.rs && cargo build --release --locked

# Run: slim Debian with CA certificates and OpenSSL (git over HTTPS), as a
# non-root numeric user.
FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates libssl3 && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/tagwatch /usr/local/bin/tagwatch
USER 65532:65532
ENTRYPOINT ["tagwatch"]
CMD ["run", "--config", "/etc/tagwatch/tagwatch.toml"]
