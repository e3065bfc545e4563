#!/usr/bin/env bash
# Renders every kustomize overlay in k8s/overlays with `kubectl kustomize`, validates the output
# offline against the Kubernetes $K8S_VERSION schemas (kubernetes-validate, strict: unknown
# fields fail), then checks the deployment invariants (scripts/deploy_invariants.py) against the
# binaries in $BIN_DIR: ib-host replicas, probes and ports, every variable one a binary reads,
# URLs, NetworkPolicies, security contexts; also deploy/compose.yaml and the Dockerfiles.
# scripts/install-k8s-tools.sh installs kubectl and kubernetes-validate.
set -euo pipefail
cd "$(dirname "$0")/.."

K8S_VERSION=${K8S_VERSION:-1.32.0}
BIN_DIR=${BIN_DIR:-${CARGO_TARGET_DIR:-target}/debug}

for tool in kubectl kubernetes-validate python3; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "k8s-check: $tool not found; run scripts/install-k8s-tools.sh" >&2
    exit 1
  fi
done

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
for overlay in k8s/overlays/*/; do
  name=$(basename "$overlay")
  kubectl kustomize "$overlay" >"$out/$name.yaml"
  kubernetes-validate --strict --quiet --kubernetes-version "$K8S_VERSION" "$out/$name.yaml"
  echo "k8s-check: $overlay renders $(grep -c '^kind:' "$out/$name.yaml") objects, valid for Kubernetes $K8S_VERSION"
done
python3 scripts/deploy_invariants.py "$BIN_DIR" "$out"
