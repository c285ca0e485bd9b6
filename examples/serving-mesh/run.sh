#!/usr/bin/env bash
# The seed procedure of 1.3 + 1.4.4 against a running `skiff up --domain
# apps.openshift.example.com` (KUBECONFIG pointing at it). Makes the
# certificates, applies the member roll, gateways, KnativeServing and the
# passthrough Knative Service, then curls it through the TLS ingress gateway.
#   HTTPS_PORT: the --https-port skiff was started with (default 8443)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
work=${WORK:-$(mktemp -d)}
port=${HTTPS_PORT:-8443}
cd "$work"
bash "$here/certs.sh"
kubectl apply -f "$here/01-servicemesh-member-roll.yaml"
kubectl apply -f "$here/02-istio-knative-gateways.yaml"
kubectl apply -f "$here/03-knative-serving-config.yaml"
kubectl apply -f "$here/04-knative-service.yaml"
kubectl wait --for=condition=Ready ksvc/hello --timeout=60s
url=$(kubectl get ksvc hello -o jsonpath='{.status.url}')
host=${url#https://}
echo "+ curl --cacert root.crt --resolve $host:$port:127.0.0.1 https://$host:$port"
curl --cacert root.crt --resolve "$host:$port:127.0.0.1" "https://$host:$port"
