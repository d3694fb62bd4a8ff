# orderpipe services image: build stage compiles, runtime stage runs as non-root.
# One image holds all four services and orderpipe-setup; docker-compose.yml
# picks the command per service.
FROM debian:bookworm-slim AS build
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      build-essential libhiredis-dev libmicrohttpd-dev libmsgpack-dev libpq-dev \
      libjsmn-dev libcmocka-dev libwebsockets-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Makefile ./
COPY shared ./shared
COPY ingest ./ingest
COPY matcher ./matcher
COPY recorder ./recorder
COPY feed ./feed
COPY ops/tools ./ops/tools
COPY tests ./tests
COPY bench ./bench
RUN make -j"$(nproc)" BUILD=/out WERROR=1 all && ls /out/bin

FROM debian:bookworm-slim
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      libhiredis0.14 libmicrohttpd12 libmsgpackc2 libpq5 libwebsockets17 curl ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home /app --shell /usr/sbin/nologin orderpipe
WORKDIR /app
COPY --from=build /out/bin/ /app/bin/
COPY schemas ./schemas
COPY config ./config
COPY feed/console ./console
USER orderpipe
ENV SYMBOLS_FILE=/app/config/symbols.conf \
    API_KEYS_FILE=/app/config/api-keys.conf \
    SCHEMAS_DIR=/app/schemas \
    FEED_CONSOLE_DIR=/app/console
CMD ["/app/bin/orderpipe-setup"]
