# syntax=docker/dockerfile:1
# Build stage: the release binary (fat LTO, stripped; see [profile.release] in Cargo.toml).
FROM rust:1-slim-bookworm AS build
WORKDIR /src
# Dependencies first, so editing the source does not rebuild them.
COPY Cargo.toml Cargo.lock ./
# Cargo reads every declared [[bench]] target's path, so empty stand-ins are kept for them.
RUN mkdir -p src benches && echo 'fn main() {}' > src/main.rs \
    && touch src/lib.rs benches/cookie.rs benches/id_token.rs \
    && cargo build --release --locked && rm -rf src
COPY src ./src
COPY config ./config
RUN touch src/main.rs src/lib.rs && cargo build --release --locked

# Final stage: glibc and libgcc only, no shell, running as uid 65532 ("nonroot").
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/sessiongate /usr/local/bin/sessiongate
COPY config/sessiongate.example.toml /etc/sessiongate/sessiongate.example.toml
ENV SESSIONGATE_CONFIG=/etc/sessiongate/sessiongate.toml
USER nonroot:nonroot
EXPOSE 4180 9090
HEALTHCHECK --interval=15s --timeout=5s --start-period=5s --retries=3 \
    CMD ["/usr/local/bin/sessiongate", "healthcheck", "--addr", "127.0.0.1:9090"]
ENTRYPOINT ["/usr/local/bin/sessiongate"]
CMD ["run"]
