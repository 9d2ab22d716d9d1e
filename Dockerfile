# Developer path: builds both isobox binaries from source into one image
# (needs the internet for the Go modules and Debian packages). Releases do
# not use this file: `make dist VERSION=x.y.z` builds the offline images
# isobox/authprovider:<version> and isobox/eventrelay:<version> without
# Docker (internal/dist), with the same uid 10001, /usr/local/bin/<service>
# and /var/lib/isobox as here.
FROM golang:1.26-bookworm AS build
ARG VERSION=0.0.0-dev
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN for svc in authprovider eventrelay; do \
      CGO_ENABLED=0 go build -trimpath -ldflags="-s -w -X github.com/isobox/isobox/internal/version.Version=${VERSION}" \
        -o /out/$svc ./cmd/$svc || exit 1; \
    done

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates curl && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home /var/lib/isobox isobox && mkdir -p /var/lib/isobox && chown isobox /var/lib/isobox
COPY --from=build /out/authprovider /out/eventrelay /usr/local/bin/
USER isobox
WORKDIR /var/lib/isobox
ENTRYPOINT ["/usr/local/bin/authprovider"]
