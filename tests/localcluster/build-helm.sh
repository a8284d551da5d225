#!/usr/bin/env bash
# Build helm from the Go module proxy into a cache directory outside the repository
# (used by the chart tests; the sidecar itself never runs helm).
#
# Usage: build-helm.sh HELM_VERSION OUT_DIR WORK_DIR
#
# helm.sh/helm/v3 has no replace directives, so a throwaway wrapper module that
# requires helm.sh/helm/v3/cmd/helm@vVERSION builds it with exactly the versions of
# helm's own go.mod. The binary is stamped the way helm's Makefile does a release
# (version, tree state, and the Kubernetes version of its client-go, which is the
# default .Capabilities.KubeVersion of `helm template` and the deprecation-check
# version of `helm lint`). It is built under a temporary name and renamed when
# complete; a helm already in OUT_DIR is not rebuilt.
set -euo pipefail
HELM_VERSION=${1:?helm version, e.g. 3.22.0}
OUT_DIR=${2:?output directory}
WORK_DIR=${3:?work directory}

say() { printf '[helm build] %s\n' "$*"; }

command -v go >/dev/null || { echo "helm build: 'go' not found on PATH: install Go >= 1.26 (or set HELM_BIN to a ready helm binary)" >&2; exit 3; }

if [ -x "$OUT_DIR/helm" ]; then say "helm already built in $OUT_DIR"; exit 0; fi

export GOTOOLCHAIN=local GOFLAGS=-mod=mod CGO_ENABLED=0
W="$WORK_DIR/helm-wrapper-$HELM_VERSION"
mkdir -p "$W" "$OUT_DIR"
start=$(date +%s)
cd "$W"
if [ ! -f go.sum ]; then
  [ -f go.mod ] || go mod init example.invalid/helmwrapper >/dev/null 2>&1
  say "resolving helm.sh/helm/v3 v$HELM_VERSION modules"
  go get "helm.sh/helm/v3/cmd/helm@v$HELM_VERSION"
fi
# client-go v0.<minor>.<patch> -> Kubernetes 1.<minor> (helm's Makefile: major + 1).
CLIENT_GO=$(go list -m -f '{{.Version}}' k8s.io/client-go)
K8S_MINOR=$(printf '%s' "$CLIENT_GO" | cut -d. -f2)
LDFLAGS="-s -w \
  -X helm.sh/helm/v3/internal/version.version=v$HELM_VERSION \
  -X helm.sh/helm/v3/internal/version.gitTreeState=clean \
  -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=1 \
  -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=$K8S_MINOR \
  -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1 \
  -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=$K8S_MINOR"
say "compiling helm v$HELM_VERSION (client-go $CLIENT_GO; about 2 min on 2 cores when cold)"
go build -trimpath -ldflags "$LDFLAGS" -o "$OUT_DIR/helm.partial" helm.sh/helm/v3/cmd/helm
mv "$OUT_DIR/helm.partial" "$OUT_DIR/helm"
say "compiled helm in $(( $(date +%s) - start )) s: $("$OUT_DIR/helm" version --short)"
