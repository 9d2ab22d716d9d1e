#!/usr/bin/env bash
# Regenerates Go code and OpenAPI files from api/**/*.proto with protoc and
# the plugins pinned as tools in go.mod (no remote registry needed). HTTP
# routes for grpc-gateway are declared in each package's *.gateway.yaml, so
# the protos import nothing beyond protoc's own well-known types.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v protoc >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq protobuf-compiler libprotobuf-dev >/dev/null; }
mkdir -p bin
GOBIN="$PWD/bin" go install tool
export PATH="$PWD/bin:$PATH"
inc=/usr/include
for dir in $(find api -name '*.proto' -printf '%h\n' | sort -u); do
  protos=$(ls "$dir"/*.proto)
  gw_cfg=$(ls "$dir"/*.gateway.yaml 2>/dev/null | head -n1 || true)
  protoc -I api -I "$inc" \
    --go_out=api --go_opt=paths=source_relative \
    --go-grpc_out=api --go-grpc_opt=paths=source_relative \
    $protos
  if [ -n "$gw_cfg" ]; then
    protoc -I api -I "$inc" \
      --grpc-gateway_out=api --grpc-gateway_opt=paths=source_relative \
      --grpc-gateway_opt=grpc_api_configuration="$gw_cfg" \
      --openapiv2_out=api --openapiv2_opt=grpc_api_configuration="$gw_cfg" \
      $protos
  fi
done
gofmt -w api
