# whipstream in a container: build with the Rust toolchain, run on a slim Debian.
FROM rust:1-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends libclang-dev cmake \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
ENV CARGO_TARGET_DIR=/src/target
RUN cargo build --release --locked --bin whipstream

FROM debian:bookworm-slim
RUN useradd --system --home /var/lib/whipstream whipstream \
 && mkdir -p /var/lib/whipstream && chown whipstream /var/lib/whipstream
COPY --from=build /src/target/release/whipstream /usr/local/bin/whipstream
USER whipstream
ENTRYPOINT ["whipstream"]
