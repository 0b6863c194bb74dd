#!/bin/sh
# Builds dist/kubectl-schemagate.tar.gz (the shim, the schemagate wheel, the licence) and
# dist/schemagate.yaml (the krew manifest with that archive's sha256), then says how to
# install them with krew.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
dist="$root/dist"
mkdir -p "$dist"
staging=$(mktemp -d)
trap 'rm -rf "$staging"' EXIT
cp "$here/kubectl-schemagate" "$root/LICENSE" "$staging/"
"${PYTHON:-python3}" -m pip wheel --quiet --no-deps --wheel-dir "$staging" "$root"
(cd "$staging" && tar -czf "$dist/kubectl-schemagate.tar.gz" kubectl-schemagate LICENSE \
  schemagate-*.whl)
sum=$(sha256sum "$dist/kubectl-schemagate.tar.gz" | cut -d' ' -f1)
sed "s/SHA256_OF_THE_ARCHIVE/$sum/" "$here/schemagate.yaml" > "$dist/schemagate.yaml"
echo "kubectl krew install --manifest=$dist/schemagate.yaml --archive=$dist/kubectl-schemagate.tar.gz"
