# Builds both isobox binaries into one small image. Used by docker-compose.yml.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/authprovider ./cmd/authprovider \
 && CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/eventrelay ./cmd/eventrelay

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates curl && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home /var/lib/isobox isobox && mkdir -p /var/lib/isobox && chown isobox /var/lib/isobox
COPY --from=build /out/authprovider /out/eventrelay /usr/local/bin/
USER isobox
WORKDIR /var/lib/isobox
ENTRYPOINT ["/usr/local/bin/authprovider"]
