#!/usr/bin/env bash
# Build etcd, kube-apiserver, kube-scheduler, kube-controller-manager, kubelet and kwok
# from the Go module proxy into a cache directory outside the repository.
#
# Usage: build-control-plane.sh K8S_VERSION KWOK_VERSION ETCD_VERSION OUT_DIR WORK_DIR
#
# k8s.io/kubernetes replaces its staging modules (k8s.io/api, ...) with local
# paths, so `go install k8s.io/kubernetes/cmd/...@v` is refused. A throwaway
# wrapper module requires k8s.io/kubernetes and replaces each staging module
# with its published v0.<minor>.<patch>. Each binary is built under a temporary
# name and renamed when complete; binaries already in OUT_DIR are not rebuilt.
#
# The kubelet (for the real-node tests) comes from the same k8s.io/kubernetes module;
# CGO_ENABLED=0 is enough for it. A wrapper resolved before the kubelet was added
# lacks go.sum lines for three of its modules: -mod=mod lets `go build` add them.
#
# etcd is built too (go.etcd.io/etcd/server/v3 is a main package): Debian's etcd
# 3.4.23 lacks progress notifications, so the API server refuses "streaming list"
# watches and clients that use them (kwok) see events tens of seconds late.
set -euo pipefail
K8S_VERSION=${1:?k8s version, e.g. 1.35.4}
KWOK_VERSION=${2:?kwok version, e.g. 0.8.0}
ETCD_VERSION=${3:?etcd version, e.g. 3.5.21}
OUT_DIR=${4:?output directory}
WORK_DIR=${5:?work directory}

say() { printf '[control-plane build] %s\n' "$*"; }

command -v go >/dev/null || { echo "control-plane build: 'go' not found on PATH: install Go >= 1.25 (or set LOCAL_CLUSTER_BIN_DIR to a directory with ready binaries)" >&2; exit 3; }

export GOTOOLCHAIN=local GOFLAGS=-mod=mod CGO_ENABLED=0
MINOR=${K8S_VERSION#1.}
mkdir -p "$OUT_DIR"

# build NAME WRAPPER_DIR PACKAGE [LDFLAGS]: go build PACKAGE into OUT_DIR/NAME unless present.
build() {
  local name=$1 dir=$2 package=$3 ldflags=${4:-} start
  if [ -x "$OUT_DIR/$name" ]; then say "$name already built"; return; fi
  say "compiling $name (minutes on 2 cores when cold)"
  start=$(date +%s)
  (cd "$dir" && go build -trimpath -ldflags "-s -w $ldflags" -o "$OUT_DIR/$name.partial" "$package")
  mv "$OUT_DIR/$name.partial" "$OUT_DIR/$name"
  say "compiled $name in $(( $(date +%s) - start )) s"
}

K8S_W="$WORK_DIR/k8s-wrapper-$K8S_VERSION"
mkdir -p "$K8S_W"
if [ ! -f "$K8S_W/go.sum" ]; then
  (
    cd "$K8S_W"
    [ -f go.mod ] || go mod init example.invalid/k8swrapper >/dev/null 2>&1
    # The staging modules of 1.32-1.35 (1.36 adds cri-streaming and streaming;
    # replacing a module that is never loaded is harmless).
    for m in api apiextensions-apiserver apimachinery apiserver cli-runtime client-go cloud-provider \
      cluster-bootstrap code-generator component-base component-helpers controller-manager cri-api cri-client \
      csi-translation-lib dynamic-resource-allocation endpointslice externaljwt kms kube-aggregator \
      kube-controller-manager kube-proxy kube-scheduler kubectl kubelet metrics mount-utils \
      pod-security-admission sample-apiserver sample-cli-plugin sample-controller cri-streaming streaming; do
      go mod edit -replace="k8s.io/$m=k8s.io/$m@v0.$MINOR"
    done
    say "resolving k8s.io/kubernetes v$K8S_VERSION modules (1-3 min on first run)"
    go get "k8s.io/kubernetes/cmd/kube-apiserver@v$K8S_VERSION" \
           "k8s.io/kubernetes/cmd/kube-scheduler@v$K8S_VERSION" \
           "k8s.io/kubernetes/cmd/kube-controller-manager@v$K8S_VERSION" \
           "k8s.io/kubernetes/cmd/kubelet@v$K8S_VERSION"
  )
fi
# Stamp the version the way Kubernetes' own build does, so /version reports
# v$K8S_VERSION (a plain go build says v0.0.0-master) and clients can pick schemas by it.
K8S_LDFLAGS="-X k8s.io/component-base/version.gitVersion=v$K8S_VERSION \
  -X k8s.io/component-base/version.gitMajor=1 \
  -X k8s.io/component-base/version.gitMinor=${MINOR%%.*} \
  -X k8s.io/component-base/version.gitTreeState=clean \
  -X k8s.io/client-go/pkg/version.gitVersion=v$K8S_VERSION"
for b in kube-apiserver kube-scheduler kube-controller-manager kubelet; do
  build "$b" "$K8S_W" "k8s.io/kubernetes/cmd/$b" "$K8S_LDFLAGS"
done

ETCD_W="$WORK_DIR/etcd-wrapper-$ETCD_VERSION"
mkdir -p "$ETCD_W"
if [ ! -f "$ETCD_W/go.sum" ]; then
  (cd "$ETCD_W" && { [ -f go.mod ] || go mod init example.invalid/etcdwrapper >/dev/null 2>&1; } \
    && say "resolving etcd v$ETCD_VERSION modules" \
    && go get "go.etcd.io/etcd/server/v3@v$ETCD_VERSION")
fi
build etcd "$ETCD_W" go.etcd.io/etcd/server/v3

if [ ! -x "$OUT_DIR/kwok" ]; then
  say "compiling kwok v$KWOK_VERSION"
  start=$(date +%s)
  GOBIN="$WORK_DIR/kwok-$KWOK_VERSION" go install "sigs.k8s.io/kwok/cmd/kwok@v$KWOK_VERSION"
  mv "$WORK_DIR/kwok-$KWOK_VERSION/kwok" "$OUT_DIR/kwok"
  say "compiled kwok in $(( $(date +%s) - start )) s"
fi
say "binaries ready in $OUT_DIR"
