# One slim image runs every role:
#   subscription-service serve|worker|migrate|seed   payment-service serve|worker|migrate   gateway-simulator
FROM rust:1.95-slim-bookworm AS builder
RUN apt-get update \
 && apt-get install -y --no-install-recommends cmake pkg-config \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p subscription-service -p payment-service -p gateway-simulator --bins \
 && mkdir -p /out \
 && cp target/release/subscription-service target/release/payment-service target/release/gateway-simulator /out/

FROM debian:bookworm-slim AS runtime
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl tini \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --no-create-home billing
WORKDIR /app
COPY --from=builder /out/ /usr/local/bin/
COPY config/environments/ /app/config/environments/
ENV CONFIG_DIR=/app/config/environments \
    HTTP_HOST=0.0.0.0
USER billing
EXPOSE 8001 8002 8003
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["subscription-service", "serve"]
