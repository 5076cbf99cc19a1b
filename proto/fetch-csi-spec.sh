#!/usr/bin/env bash
# Obtains csi.proto of the CSI spec at a pinned version through the Go module proxy, checks its
# sha256 against the digest pinned in the root pom, and lays it out with the project's own protos
# in one directory for protoc. The spec is never copied into the repository.
#
# usage: fetch-csi-spec.sh VERSION SHA256 OUT_DIR OWN_PROTO_DIR
set -euo pipefail
version=$1 want=$2 out=$3 own=$4
module=github.com/container-storage-interface/spec

mkdir -p "$out/csi/v1"
if [[ -f "$out/csi.proto.pristine" ]] && echo "$want  $out/csi.proto.pristine" | sha256sum -c --status; then
  cp "$out/csi.proto.pristine" "$out/csi/v1/csi.proto"
else
  command -v go >/dev/null || { echo "fetch-csi-spec: 'go' is needed to download $module@$version" >&2; exit 1; }
  dir=$(go mod download -json "$module@$version" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
  [[ -n "$dir" && -f "$dir/csi.proto" ]] || { echo "fetch-csi-spec: no csi.proto in $module@$version" >&2; exit 1; }
  got=$(sha256sum "$dir/csi.proto" | cut -d' ' -f1)
  if [[ "$got" != "$want" ]]; then
    echo "fetch-csi-spec: csi.proto of $module@$version has sha256 $got, expected $want" >&2
    exit 1
  fi
  install -m 0644 "$dir/csi.proto" "$out/csi.proto.pristine"
  cp "$out/csi.proto.pristine" "$out/csi/v1/csi.proto"
fi
# protoc's Java generator derives the same builder methods (internalGetMutableParameters) from a
# map field "parameters" and a map field "mutable_parameters" in one message, and the generated
# code does not compile. Rename the latter in the build's copy only: protobuf's binary wire format
# depends on field numbers alone, so messages stay byte-compatible with every CSI peer.
sed 's/\bmutable_parameters = \([0-9]*\);/modifiable_parameters = \1; \/\/ renamed from mutable_parameters by fetch-csi-spec.sh/' \
  "$out/csi/v1/csi.proto" > "$out/csi/v1/csi.proto.java" && mv "$out/csi/v1/csi.proto.java" "$out/csi/v1/csi.proto"
cp -r "$own"/. "$out"/
