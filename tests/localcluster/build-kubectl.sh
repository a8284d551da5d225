#!/usr/bin/env bash
# Build kubectl from the Go module proxy into a cache directory outside the repository
# (for the README's "try the chart" steps and the chart install test; the sidecar itself
# never runs kubectl).
#
# Usage: build-kubectl.sh K8S_VERSION OUT_DIR WORK_DIR
#
# kubectl's code is the published module k8s.io/kubectl (v0.<minor>.<patch> for
# Kubernetes 1.<minor>.<patch>); its command is a few lines in k8s.io/kubernetes
# (cmd/kubectl/kubectl.go), reproduced here in a throwaway wrapper module so that the
# k8s.io/kubernetes module (and its staging replace directives) is not needed. The
# binary is stamped with its version, as a release build is; it is built under a
# temporary name and renamed when complete; one already in OUT_DIR is not rebuilt.
set -euo pipefail
K8S_VERSION=${1:?Kubernetes version, e.g. 1.35.4}
OUT_DIR=${2:?output directory}
WORK_DIR=${3:?work directory}

say() { printf '[kubectl build] %s\n' "$*"; }

command -v go >/dev/null || { echo "kubectl build: 'go' not found on PATH: install Go >= 1.26 (or set KUBECTL_BIN to a ready kubectl binary)" >&2; exit 3; }

if [ -x "$OUT_DIR/kubectl" ]; then say "kubectl already built in $OUT_DIR"; exit 0; fi

export GOTOOLCHAIN=local GOFLAGS=-mod=mod CGO_ENABLED=0
MODULE_VERSION="v0.${K8S_VERSION#1.}"
MINOR=$(printf '%s' "$K8S_VERSION" | cut -d. -f2)
W="$WORK_DIR/kubectl-wrapper-$K8S_VERSION"
mkdir -p "$W" "$OUT_DIR"
start=$(date +%s)
cd "$W"
cat > main.go <<'GO'
package main

import (
	"k8s.io/component-base/cli"
	"k8s.io/kubectl/pkg/cmd"
	"k8s.io/kubectl/pkg/cmd/util"
)

func main() {
	command := cmd.NewDefaultKubectlCommand()
	if err := cli.RunNoErrOutput(command); err != nil {
		util.CheckErr(err)
	}
}
GO
if [ ! -f go.sum ]; then
  [ -f go.mod ] || go mod init example.invalid/kubectlwrapper >/dev/null 2>&1
  say "resolving k8s.io/kubectl $MODULE_VERSION modules"
  go get "k8s.io/kubectl@$MODULE_VERSION" "k8s.io/component-base@$MODULE_VERSION"
  go mod tidy
fi
LDFLAGS="-s -w"
for pkg in k8s.io/client-go/pkg/version k8s.io/component-base/version; do
  LDFLAGS="$LDFLAGS -X $pkg.gitVersion=v$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$MINOR -X $pkg.gitTreeState=clean"
done
say "compiling kubectl v$K8S_VERSION (about 30 s on 2 cores when cold)"
go build -trimpath -ldflags "$LDFLAGS" -o "$OUT_DIR/kubectl.partial" .
mv "$OUT_DIR/kubectl.partial" "$OUT_DIR/kubectl"
say "compiled kubectl in $(( $(date +%s) - start )) s: $("$OUT_DIR/kubectl" version --client | head -1)"
