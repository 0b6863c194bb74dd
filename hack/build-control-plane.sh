#!/usr/bin/env bash
# Builds kube-apiserver, kube-controller-manager, kubectl, etcd, helm and actionlint from the
# Go module proxy at pinned versions, into a cache outside the repository keyed
# by those versions; `node` adds kubelet, kube-proxy, kube-scheduler and the pause
# binary of a real node. A second run with the same versions does nothing.
set -Eeuo pipefail

K8S_VERSION="${K8S_VERSION:-v1.36.3}"
ETCD_VERSION="${ETCD_VERSION:-v3.6.16}"
HELM_VERSION="${HELM_VERSION:-v3.22.0}"
ACTIONLINT_VERSION="${ACTIONLINT_VERSION:-v1.7.12}"
CACHE_ROOT="${SCHEMAGATE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/schemagate}"
BIN_DIR="$CACHE_ROOT/bin/k8s-$K8S_VERSION-etcd-$ETCD_VERSION"
HELM_DIR="$CACHE_ROOT/bin/helm-$HELM_VERSION"
ACTIONLINT_DIR="$CACHE_ROOT/bin/actionlint-$ACTIONLINT_VERSION"
NODE_DIR="$CACHE_ROOT/bin/node-k8s-$K8S_VERSION"
NODE_CMDS=(kubelet kube-proxy kube-scheduler)
WORK="$CACHE_ROOT/build"
what="${1:-control-plane}"

log() { printf '[build %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
# A failure's last line says which command failed, also one whose output was captured.
trap 'log "failed (exit $?) at line $LINENO: $BASH_COMMAND"' ERR

staging_replaces() {
  # kubernetes' own go.mod lists every staging module it replaces with ./staging;
  # each becomes k8s.io/X v0.MINOR.PATCH, so the list cannot drift from upstream.
  local gomod="$1" staging="v0.${K8S_VERSION#v1.}"
  sed -n 's#^[[:space:]]*\(k8s\.io/[a-z0-9-]*\) => \./staging/.*#\1#p' "$gomod" |
    while read -r mod; do printf 'replace %s => %s %s\n' "$mod" "$mod" "$staging"; done
}

k8s_ldflags() {
  local minor pkg ldflags
  minor="${K8S_VERSION#v1.}"; minor="${minor%%.*}"
  pkg=k8s.io/component-base/version
  ldflags="-s -w -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
  ldflags="$ldflags -X k8s.io/client-go/pkg/version.gitVersion=$K8S_VERSION -X k8s.io/client-go/pkg/version.gitMajor=1 -X k8s.io/client-go/pkg/version.gitMinor=$minor"
  echo "$ldflags"
}

build_kubernetes() {
  local dir="$WORK/k8s-$K8S_VERSION"
  mkdir -p "$dir"
  cd "$dir"
  local gomod download
  # go reports a failed download in its JSON, on stdout: said here, or it would be lost.
  if ! download=$(GOFLAGS=-mod=mod go mod download -json "k8s.io/kubernetes@$K8S_VERSION"); then
    log "cannot download k8s.io/kubernetes@$K8S_VERSION: $(sed -n 's/.*"Error": "\(.*\)".*/\1/p' <<<"$download")"
    exit 1
  fi
  gomod=$(sed -n 's/.*"GoMod": "\(.*\)".*/\1/p' <<<"$download")
  {
    printf 'module schemagate.local/k8sbuild\n\ngo 1.26\n\nrequire k8s.io/kubernetes %s\n\n' "$K8S_VERSION"
    staging_replaces "$gomod"
  } >go.mod
  cat >tools.go <<'GO'
//go:build tools

package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubectl/pkg/cmd"
)
GO
  log "resolving k8s.io/kubernetes $K8S_VERSION ($(grep -c '^replace' go.mod) staging modules)"
  GOFLAGS=-mod=mod go mod tidy -e >/dev/null 2>&1 || true
  GOFLAGS=-mod=mod go get "k8s.io/kubernetes@$K8S_VERSION" >&2
  local ldflags
  ldflags=$(k8s_ldflags)
  mkdir -p "$BIN_DIR.tmp"
  for cmd in kube-apiserver kube-controller-manager kubectl; do
    log "building $cmd"
    GOFLAGS=-mod=mod CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$BIN_DIR.tmp/$cmd" "k8s.io/kubernetes/cmd/$cmd"
  done
}

build_node() {
  # The same go.mod as the control plane (build_kubernetes wrote it), so the
  # module and build caches it warmed are reused: about a minute on top of it.
  local dir="$WORK/k8s-$K8S_VERSION" ldflags cmd pause
  cd "$dir"
  ldflags=$(k8s_ldflags)
  rm -rf "$NODE_DIR.tmp" && mkdir -p "$NODE_DIR.tmp"
  for cmd in "${NODE_CMDS[@]}"; do
    log "building $cmd"
    GOFLAGS=-mod=mod CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$NODE_DIR.tmp/$cmd" "k8s.io/kubernetes/cmd/$cmd"
  done
  # The sandbox image's only binary: kubernetes' own pause.c, from the module cache.
  pause="$(GOFLAGS=-mod=mod go list -m -f '{{.Dir}}' k8s.io/kubernetes)/build/pause/linux/pause.c"
  log "compiling pause from $pause"
  gcc -Os -static -DVERSION="$K8S_VERSION-schemagate" -o "$NODE_DIR.tmp/pause" "$pause"
  strip "$NODE_DIR.tmp/pause"
}

build_etcd() {
  local dir="$WORK/etcd-$ETCD_VERSION"
  mkdir -p "$dir" && cd "$dir"
  printf 'module schemagate.local/etcdbuild\n\ngo 1.26\n' >go.mod
  cat >main.go <<'GO'
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
GO
  log "building etcd $ETCD_VERSION"
  GOFLAGS=-mod=mod go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION" >&2
  GOFLAGS=-mod=mod go mod tidy >&2
  GOFLAGS=-mod=mod CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$BIN_DIR.tmp/etcd" .
}

build_helm() {
  [ -x "$HELM_DIR/helm" ] && { echo "$HELM_DIR/helm"; return; }
  # One build at a time: a second caller waits, then finds helm built.
  mkdir -p "$(dirname "$HELM_DIR")"
  if command -v flock >/dev/null; then exec 8>"$HELM_DIR.lock"; flock 8; fi
  [ -x "$HELM_DIR/helm" ] && { echo "$HELM_DIR/helm"; return; }
  local dir="$WORK/helm-$HELM_VERSION" start
  start=$(date +%s)
  mkdir -p "$dir" && cd "$dir"
  printf 'module schemagate.local/helmbuild\n\ngo 1.26\n' >go.mod
  log "building helm $HELM_VERSION"
  GOFLAGS=-mod=mod go get "helm.sh/helm/v3@$HELM_VERSION" >&2
  # The stamps helm's own Makefile sets for a tagged build. The Kubernetes version
  # is the client-go minor plus one (helm's rule): it is the default
  # .Capabilities.KubeVersion of `helm template` and what `helm lint` checks
  # deprecated APIs against; unstamped, both say v1.20.
  local client_go major minor pkg=helm.sh/helm/v3 ldflags
  client_go=$(GOFLAGS=-mod=mod go list -m -f '{{.Version}}' k8s.io/client-go)
  client_go="${client_go#v}"
  major=$(( ${client_go%%.*} + 1 )); minor="${client_go#*.}"; minor="${minor%%.*}"
  ldflags="-s -w -X $pkg/internal/version.version=$HELM_VERSION"
  ldflags="$ldflags -X $pkg/internal/version.gitTreeState=clean"
  ldflags="$ldflags -X $pkg/pkg/lint/rules.k8sVersionMajor=$major -X $pkg/pkg/lint/rules.k8sVersionMinor=$minor"
  ldflags="$ldflags -X $pkg/pkg/chartutil.k8sVersionMajor=$major -X $pkg/pkg/chartutil.k8sVersionMinor=$minor"
  rm -rf "$HELM_DIR.tmp" && mkdir -p "$HELM_DIR.tmp"
  GOFLAGS=-mod=mod CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" \
    -o "$HELM_DIR.tmp/helm" "$pkg/cmd/helm"
  rm -rf "$HELM_DIR" && mv "$HELM_DIR.tmp" "$HELM_DIR"
  log "helm $HELM_VERSION built in $(( $(date +%s) - start ))s into $HELM_DIR"
  echo "$HELM_DIR/helm"
}

build_actionlint() {
  # Lints .github/workflows in `make test`; the workflows themselves cannot run here.
  [ -x "$ACTIONLINT_DIR/actionlint" ] && { echo "$ACTIONLINT_DIR/actionlint"; return; }
  mkdir -p "$(dirname "$ACTIONLINT_DIR")"
  if command -v flock >/dev/null; then exec 7>"$ACTIONLINT_DIR.lock"; flock 7; fi
  [ -x "$ACTIONLINT_DIR/actionlint" ] && { echo "$ACTIONLINT_DIR/actionlint"; return; }
  local dir="$WORK/actionlint-$ACTIONLINT_VERSION" start pkg=github.com/rhysd/actionlint
  start=$(date +%s)
  mkdir -p "$dir" && cd "$dir"
  printf 'module schemagate.local/actionlintbuild\n\ngo 1.26\n' >go.mod
  log "building actionlint $ACTIONLINT_VERSION"
  GOFLAGS=-mod=mod go get "$pkg@$ACTIONLINT_VERSION" >&2
  rm -rf "$ACTIONLINT_DIR.tmp" && mkdir -p "$ACTIONLINT_DIR.tmp"
  GOFLAGS=-mod=mod CGO_ENABLED=0 go build -trimpath \
    -ldflags "-s -w -X $pkg.version=$ACTIONLINT_VERSION" \
    -o "$ACTIONLINT_DIR.tmp/actionlint" "$pkg/cmd/actionlint"
  rm -rf "$ACTIONLINT_DIR" && mv "$ACTIONLINT_DIR.tmp" "$ACTIONLINT_DIR"
  log "actionlint $ACTIONLINT_VERSION built in $(( $(date +%s) - start ))s into $ACTIONLINT_DIR"
  echo "$ACTIONLINT_DIR/actionlint"
}

case "$what" in
  path)
    # Where the binaries are (or will be); exit status 1 when they are not built yet.
    trap - ERR
    echo "$BIN_DIR"
    [ -x "$BIN_DIR/kube-apiserver" ] && [ -x "$BIN_DIR/etcd" ]
    ;;
  control-plane)
    built() { [ -x "$BIN_DIR/kube-apiserver" ] && [ -x "$BIN_DIR/etcd" ] && [ -x "$BIN_DIR/kubectl" ]; }
    if built; then echo "$BIN_DIR"; exit 0; fi
    # One build at a time: a second caller waits, then finds the binaries built.
    mkdir -p "$(dirname "$BIN_DIR")"
    if command -v flock >/dev/null; then exec 9>"$BIN_DIR.lock"; flock 9; fi
    if built; then echo "$BIN_DIR"; exit 0; fi
    log "building the control plane from the Go module proxy, once (about 6 minutes on 2 cores)"
    start=$(date +%s)
    rm -rf "$BIN_DIR.tmp"
    build_etcd
    build_kubernetes
    rm -rf "$BIN_DIR" && mv "$BIN_DIR.tmp" "$BIN_DIR"
    log "control plane built in $(( $(date +%s) - start ))s into $BIN_DIR"
    echo "$BIN_DIR"
    ;;
  node)
    # The control plane first (its go.mod and build cache), then the node's binaries.
    bash "$0" control-plane >/dev/null
    node_built() { for c in "${NODE_CMDS[@]}" pause; do [ -x "$NODE_DIR/$c" ] || return 1; done; }
    if node_built; then echo "$NODE_DIR"; exit 0; fi
    mkdir -p "$(dirname "$NODE_DIR")"
    if command -v flock >/dev/null; then exec 9>"$NODE_DIR.lock"; flock 9; fi
    if node_built; then echo "$NODE_DIR"; exit 0; fi
    log "building kubelet, kube-proxy and kube-scheduler $K8S_VERSION from the Go module proxy, once (about a minute after the control plane)"
    start=$(date +%s)
    build_node
    rm -rf "$NODE_DIR" && mv "$NODE_DIR.tmp" "$NODE_DIR"
    log "node binaries built in $(( $(date +%s) - start ))s into $NODE_DIR"
    echo "$NODE_DIR"
    ;;
  node-path)
    trap - ERR
    echo "$NODE_DIR"
    [ -x "$NODE_DIR/kubelet" ] && [ -x "$NODE_DIR/pause" ]
    ;;
  helm) build_helm ;;
  actionlint) build_actionlint ;;
  *) echo "usage: $0 [control-plane|path|node|node-path|helm|actionlint]" >&2; exit 2 ;;
esac
