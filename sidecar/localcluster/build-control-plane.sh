#!/usr/bin/env bash
# Build kube-apiserver, kube-scheduler, kube-controller-manager and kwok from the
# Go module proxy into a cache directory outside the repository.
#
# Usage: build-control-plane.sh K8S_VERSION KWOK_VERSION OUT_DIR WORK_DIR
#
# k8s.io/kubernetes replaces its staging modules (k8s.io/api, ...) with local
# paths, so `go install k8s.io/kubernetes/cmd/...@v` is refused. A throwaway
# wrapper module requires k8s.io/kubernetes and replaces each staging module
# with its published v0.<minor>.<patch>. Binaries land in OUT_DIR only when the
# whole build succeeded (built into a temporary directory, then renamed).
set -euo pipefail
K8S_VERSION=${1:?k8s version, e.g. 1.35.4}
KWOK_VERSION=${2:?kwok version, e.g. 0.8.0}
OUT_DIR=${3:?output directory}
WORK_DIR=${4:?work directory}

say() { printf '[control-plane build] %s\n' "$*"; }

command -v go >/dev/null || { echo "control-plane build: 'go' not found on PATH: install Go >= 1.25 (or set LOCAL_CLUSTER_BIN_DIR to a directory with ready binaries)" >&2; exit 3; }

export GOTOOLCHAIN=local GOFLAGS=-mod=mod CGO_ENABLED=0
MINOR=${K8S_VERSION#1.}
W="$WORK_DIR/k8s-wrapper-$K8S_VERSION"
TMP_OUT="$OUT_DIR.partial"
rm -rf "$TMP_OUT"; mkdir -p "$W" "$TMP_OUT"
cd "$W"
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
       "k8s.io/kubernetes/cmd/kube-controller-manager@v$K8S_VERSION"
for b in kube-apiserver kube-scheduler kube-controller-manager; do
  say "compiling $b (several minutes each on 2 cores when cold)"
  start=$(date +%s)
  go build -trimpath -ldflags "-s -w" -o "$TMP_OUT/$b" "k8s.io/kubernetes/cmd/$b"
  say "compiled $b in $(( $(date +%s) - start )) s"
done
say "compiling kwok v$KWOK_VERSION"
start=$(date +%s)
GOBIN="$TMP_OUT" go install "sigs.k8s.io/kwok/cmd/kwok@v$KWOK_VERSION"
say "compiled kwok in $(( $(date +%s) - start )) s"
rm -rf "$OUT_DIR"
mv "$TMP_OUT" "$OUT_DIR"
say "binaries ready in $OUT_DIR"
