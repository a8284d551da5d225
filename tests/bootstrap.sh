#!/usr/bin/env bash
# Installs what `make run` and `make test` need, skipping what is already there:
#   - Debian packages etcd-server and openssh-server (and curl), with apt-get; as root
#     also containerd, runc, containernetworking-plugins and busybox-static (real node);
#   - a virtualenv in .venv with the package and its test extras;
#   - the control-plane binaries (built once from the Go module proxy into
#     ~/.cache/interlink-k8s-sidecar, or taken from $LOCAL_CLUSTER_BIN_DIR);
#   - interLink's interlink and virtual-kubelet for tests/e2e (built once from
#     ../shared/vendor/interlink-*.tar.gz or $INTERLINK_SRC_DIR into the same cache, or
#     taken from $INTERLINK_BIN_DIR);
#   - helm and kubectl, built the same way (or $HELM_BIN / $KUBECTL_BIN), linked into
#     .venv/bin.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}

missing=()
command -v etcd >/dev/null || [ -x /usr/bin/etcd ] || missing+=(etcd-server)
[ -x /usr/sbin/sshd ] || missing+=(openssh-server)
command -v curl >/dev/null || missing+=(curl)
# The real node (tests/localcluster/realnode) needs root and these; without root the
# real-node tests skip and say why. LOCAL_CLUSTER_REAL_NODE=0 skips them here too.
if [ "$(id -u)" -eq 0 ] && [ "${LOCAL_CLUSTER_REAL_NODE:-auto}" != 0 ]; then
  command -v containerd >/dev/null || missing+=(containerd)
  command -v runc >/dev/null || [ -x /usr/sbin/runc ] || missing+=(runc)
  [ -x /usr/lib/cni/bridge ] || missing+=(containernetworking-plugins)
  [ -x /bin/busybox ] || missing+=(busybox-static)
  command -v gcc >/dev/null || missing+=(gcc libc6-dev)
fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "[setup] installing Debian packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if [ ! -x "$VENV/bin/python" ]; then
  echo "[setup] creating $VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --upgrade pip
fi
echo "[setup] installing the package with its test extras"
"$VENV/bin/pip" install -q -e '.[test]'

echo "[setup] control-plane binaries"
"$VENV/bin/python" -m tests.localcluster.build

# The end-to-end tier's interLink (API server and virtual kubelet), built from
# ../shared/vendor/ (or $INTERLINK_SRC_DIR, or taken from $INTERLINK_BIN_DIR); never
# part of the package. Without any source this prints why and the tier is skipped.
echo "[setup] interLink binaries for the end-to-end tier (tests/e2e)"
"$VENV/bin/python" -m tests.e2e.chain

echo "[setup] helm and kubectl (linked into $VENV/bin)"
"$VENV/bin/python" -m tests.localcluster.tools
