#!/usr/bin/env bash
# Seed 1.3, steps 1-4, verbatim (oc -> kubectl): a root CA, a wildcard
# certificate for *.apps.openshift.example.com signed by it, and the TLS Secret
# the knative-ingress-gateway serves (credentialName: wildcard-certs).
set -euo pipefail
openssl req -x509 -sha256 -nodes -days 365 -newkey rsa:2048 \
  -subj '/O=Example Inc./CN=example.com' \
  -keyout root.key \
  -out root.crt
openssl req -nodes -newkey rsa:2048 \
  -subj "/CN=*.apps.openshift.example.com/O=Example Inc." \
  -keyout wildcard.key \
  -out wildcard.csr
openssl x509 -req -days 365 -set_serial 0 \
  -CA root.crt \
  -CAkey root.key \
  -in wildcard.csr \
  -out wildcard.crt
kubectl create -n istio-system secret tls wildcard-certs \
  --key=wildcard.key \
  --cert=wildcard.crt
