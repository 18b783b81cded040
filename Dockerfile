# whipstream in a container: build with the Rust toolchain, run on a slim Debian.
#
#   docker build -t whipstream .
#   docker run --rm -p 8080:8080 -v $PWD/config/docker.toml:/etc/whipstream/whipstream.toml:ro \
#       whipstream run --config /etc/whipstream/whipstream.toml
#
# The image runs as the unprivileged user 10001 (numeric, so that Kubernetes'
# runAsNonRoot can check it) with /var/lib/whipstream as its writable home, and
# its HEALTHCHECK asks /readyz on 127.0.0.1:8080 (`http.listen` of the shipped
# configurations; change the check with the port).
FROM rust:1-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends libclang-dev cmake \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
ENV CARGO_TARGET_DIR=/src/target
# The shipped build (scripts/dist.sh): the `dist` profile (fat LTO), then a
# fully stripped binary; its debug information (line tables of whipstream's
# own code, symbols) stays in this stage as /src/dist/whipstream.debug for
# symbolising a crash. See BENCHMARKS.md for the sizes.
RUN bash scripts/dist.sh /src/dist

FROM debian:bookworm-slim
# What the binary links (`ldd`: libssl.so.3 and libcrypto.so.3 for librdkafka's
# TLS and SASL, libstdc++ for RocksDB, libz), and the CA certificates that both
# librdkafka and the S3/HTTPS client (rustls, system roots) verify servers
# against. libstdc++6 and zlib1g are in the base image already; listed so that
# a change of base image cannot drop them silently.
RUN apt-get update \
 && apt-get install -y --no-install-recommends libssl3 libstdc++6 zlib1g ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 whipstream \
 && useradd --system --uid 10001 --gid 10001 --home /var/lib/whipstream whipstream \
 && mkdir -p /var/lib/whipstream && chown 10001:10001 /var/lib/whipstream
COPY --from=build /src/dist/whipstream /usr/local/bin/whipstream
USER 10001:10001
WORKDIR /var/lib/whipstream
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
  CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/8080 && printf 'GET /readyz HTTP/1.0\\r\\n\\r\\n' >&3 && grep -q ' 200 ' <&3"]
ENTRYPOINT ["whipstream"]
