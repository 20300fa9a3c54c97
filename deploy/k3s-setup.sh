#!/bin/sh
# One-shot setup of the k3s service for Airflow (runs in the rancher/k3s image, which has sh,
# sed and kubectl): wait for the kubeconfig k3s writes, point it at the service name instead of
# 127.0.0.1, wait until the API server is ready, and create the namespace the example DAGs use.
set -eu
SOURCE=/output/kubeconfig.yaml
TARGET=/kube/kubeconfig.yaml
NAMESPACE="${TENANTS_NAMESPACE:-tenants}"

until [ -s "$SOURCE" ]; do sleep 1; done
sed 's#https://127.0.0.1:6443#https://k3s:6443#' "$SOURCE" >"$TARGET.tmp"
chmod 644 "$TARGET.tmp"
mv "$TARGET.tmp" "$TARGET"

until kubectl --kubeconfig "$TARGET" get --raw /readyz >/dev/null 2>&1; do sleep 2; done
kubectl --kubeconfig "$TARGET" create namespace "$NAMESPACE" --dry-run=client -o yaml \
    | kubectl --kubeconfig "$TARGET" apply -f -
echo "k3s ready; kubeconfig at $TARGET, namespace $NAMESPACE"
