"""Built-in kinds: registry facts and their schemas against realistic manifests.

Valid input comes from where users get it: `kubectl create ... --dry-run=client
-o yaml` output (recorded verbatim below), the NetworkPolicies of the Serverless
guide (shared/seeds, sections 1.5 and 1.6, typos fixed), and full-featured Pod,
Deployment, Event and CRD manifests. Invalid input must give causes that name
the field path.
"""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from skiff.core.builtin_kinds import KINDS
from skiff.core.kinds import Kind, Kinds
from skiff.core.validation import validate

# `kubectl create <args> --dry-run=client -o yaml`, kubectl v1.32.4, recorded verbatim.
KUBECTL_DRY_RUN = {
    # kubectl create secret tls wildcard-certs --cert=ec.crt --key=ec.key -n istio-system
    "secret-tls": """\
apiVersion: v1
data:
  tls.crt: LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCk1JSUJqekNDQVRXZ0F3SUJBZ0lVVzdUWHJoNnhJb3Y5aWcxRFM1Wlcwa2Vzdk04d0NnWUlLb1pJemowRUF3SXcKSFRFYk1Ca0dBMVVFQXd3U0tpNWhjSEJ6TG1WNFlXMXdiR1V1WTI5dE1CNFhEVEkyTVRFeU5URTVNVGN5TVZvWApEVEkyTVRFeU5qRTVNVGN5TVZvd0hURWJNQmtHQTFVRUF3d1NLaTVoY0hCekxtVjRZVzF3YkdVdVkyOXRNRmt3CkV3WUhLb1pJemowQ0FRWUlLb1pJemowREFRY0RRZ0FFUTNjU09pTkdGdmtBYzhiRUIxZmluNTlaR09GbjZvTzcKWHFvRHFFdWpDT0NZMVlwVzNLYVA4UzBaRnk4NklwYlhJakthb05Gd1BOUmllZHNDR1lCUHo2TlRNRkV3SFFZRApWUjBPQkJZRUZHNk94ZXI2dEhyaWU3Z1dSVERQZkRlV2MycGpNQjhHQTFVZEl3UVlNQmFBRkc2T3hlcjZ0SHJpCmU3Z1dSVERQZkRlV2MycGpNQThHQTFVZEV3RUIvd1FGTUFNQkFmOHdDZ1lJS29aSXpqMEVBd0lEU0FBd1JRSWcKZjl6MllEYzFHM2N5L05FOCtCdHVoalhIaEI3NytVeVhIUW5STXYvaDZMQUNJUUR2Y2JiSHNFRmJFeDRTaWhxUwowS0k1akQxNGtqQW1tUmZJYjN5M3VrMjUvdz09Ci0tLS0tRU5EIENFUlRJRklDQVRFLS0tLS0K
  tls.key: LS0tLS1CRUdJTiBQUklWQVRFIEtFWS0tLS0tCk1JR0hBZ0VBTUJNR0J5cUdTTTQ5QWdFR0NDcUdTTTQ5QXdFSEJHMHdhd0lCQVFRZ0lxdkVEM3luVHJvY1h3clQKUEZ4bStuNmpXdWlib3dKTUJKVlE2RTBxOTA2aFJBTkNBQVJEZHhJNkkwWVcrUUJ6eHNRSFYrS2ZuMWtZNFdmcQpnN3RlcWdPb1M2TUk0SmpWaWxiY3BvL3hMUmtYTHpvaWx0Y2lNcHFnMFhBODFHSjUyd0laZ0UvUAotLS0tLUVORCBQUklWQVRFIEtFWS0tLS0tCg==
kind: Secret
metadata:
  creationTimestamp: null
  name: wildcard-certs
  namespace: istio-system
type: kubernetes.io/tls
""",
    # kubectl create secret generic creds --from-literal=user=admin
    "secret-generic": """\
apiVersion: v1
data:
  user: YWRtaW4=
kind: Secret
metadata:
  creationTimestamp: null
  name: creds
""",
    # kubectl create secret docker-registry reg --docker-server=q.io --docker-username=u --docker-password=p
    "secret-docker-registry": """\
apiVersion: v1
data:
  .dockerconfigjson: eyJhdXRocyI6eyJxLmlvIjp7InVzZXJuYW1lIjoidSIsInBhc3N3b3JkIjoicCIsImF1dGgiOiJkVHB3In19fQ==
kind: Secret
metadata:
  creationTimestamp: null
  name: reg
type: kubernetes.io/dockerconfigjson
""",
    # kubectl create configmap config-observability --from-literal=metrics.backend-destination=prometheus -n knative-serving
    "configmap": """\
apiVersion: v1
data:
  metrics.backend-destination: prometheus
kind: ConfigMap
metadata:
  creationTimestamp: null
  name: config-observability
  namespace: knative-serving
""",
    # kubectl create namespace tenant-1
    "namespace": """\
apiVersion: v1
kind: Namespace
metadata:
  creationTimestamp: null
  name: tenant-1
spec: {}
status: {}
""",
    # kubectl create serviceaccount tenant-sa -n tenant-1
    "serviceaccount": """\
apiVersion: v1
kind: ServiceAccount
metadata:
  creationTimestamp: null
  name: tenant-sa
  namespace: tenant-1
""",
    # kubectl create service clusterip hello --tcp=80:8080
    "service-clusterip": """\
apiVersion: v1
kind: Service
metadata:
  creationTimestamp: null
  labels:
    app: hello
  name: hello
spec:
  ports:
  - name: 80-8080
    port: 80
    protocol: TCP
    targetPort: 8080
  selector:
    app: hello
  type: ClusterIP
status:
  loadBalancer: {}
""",
    # kubectl create service nodeport np --tcp=80:8080
    "service-nodeport": """\
apiVersion: v1
kind: Service
metadata:
  creationTimestamp: null
  labels:
    app: np
  name: np
spec:
  ports:
  - name: 80-8080
    port: 80
    protocol: TCP
    targetPort: 8080
  selector:
    app: np
  type: NodePort
status:
  loadBalancer: {}
""",
    # kubectl create service loadbalancer lb --tcp=443:8443
    "service-loadbalancer": """\
apiVersion: v1
kind: Service
metadata:
  creationTimestamp: null
  labels:
    app: lb
  name: lb
spec:
  ports:
  - name: 443-8443
    port: 443
    protocol: TCP
    targetPort: 8443
  selector:
    app: lb
  type: LoadBalancer
status:
  loadBalancer: {}
""",
    # kubectl create service externalname ext --external-name=example.com
    "service-externalname": """\
apiVersion: v1
kind: Service
metadata:
  creationTimestamp: null
  labels:
    app: ext
  name: ext
spec:
  externalName: example.com
  selector:
    app: ext
  type: ExternalName
status:
  loadBalancer: {}
""",
    # kubectl create deployment hello --image=docker.io/openshift/hello-openshift
    "deployment-hello": """\
apiVersion: apps/v1
kind: Deployment
metadata:
  creationTimestamp: null
  labels:
    app: hello
  name: hello
spec:
  replicas: 1
  selector:
    matchLabels:
      app: hello
  strategy: {}
  template:
    metadata:
      creationTimestamp: null
      labels:
        app: hello
    spec:
      containers:
      - image: docker.io/openshift/hello-openshift
        name: hello-openshift
        resources: {}
status: {}
""",
    # kubectl create deployment web --image=nginx --image=busybox --replicas=3 --port=80
    "deployment-web": """\
apiVersion: apps/v1
kind: Deployment
metadata:
  creationTimestamp: null
  labels:
    app: web
  name: web
spec:
  replicas: 3
  selector:
    matchLabels:
      app: web
  strategy: {}
  template:
    metadata:
      creationTimestamp: null
      labels:
        app: web
    spec:
      containers:
      - image: nginx
        name: nginx
        ports:
        - containerPort: 80
        resources: {}
      - image: busybox
        name: busybox
        resources: {}
status: {}
""",
}

# Section 1.5 (metrics under mTLS): in the guide `podSelector: {}` sits under the
# ingress list item's indentation and the block ends in "...".
SEED_NETPOL_MONITORING = """\
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: allow-from-openshift-monitoring-ns
  namespace: knative-serving
spec:
  ingress:
    - from:
      - namespaceSelector:
          matchLabels:
            name: "openshift-monitoring"
  podSelector: {}
"""

# Section 1.6 (Kourier enabled): `namespace: <namespace> 1` carried a callout
# number, and the block was split in two and flattened.
SEED_NETPOL_SERVING = """\
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: allow-from-serving-system-namespace
  namespace: tenant-1
spec:
  ingress:
  - from:
    - namespaceSelector:
        matchLabels:
          knative.openshift.io/part-of: "openshift-serverless"
  podSelector: {}
  policyTypes:
  - Ingress
"""

NETPOL_FULL = """\
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: test-network-policy
  namespace: default
spec:
  podSelector:
    matchLabels:
      role: db
  policyTypes:
  - Ingress
  - Egress
  ingress:
  - from:
    - ipBlock:
        cidr: 172.17.0.0/16
        except:
        - 172.17.1.0/24
    - namespaceSelector:
        matchLabels:
          project: myproject
      podSelector:
        matchExpressions:
        - {key: role, operator: In, values: [frontend]}
    ports:
    - protocol: TCP
      port: 6379
  egress:
  - to:
    - ipBlock:
        cidr: 10.0.0.0/24
    ports:
    - protocol: TCP
      port: 32000
      endPort: 32768
    - port: dns
"""

POD_FULL = """\
apiVersion: v1
kind: Pod
metadata:
  name: web-0
  namespace: tenant-1
  labels: {app: web, cost-center: team-a}
  annotations: {sidecar.istio.io/inject: "true"}
spec:
  serviceAccountName: web
  automountServiceAccountToken: false
  restartPolicy: Always
  terminationGracePeriodSeconds: 30
  activeDeadlineSeconds: 3600
  dnsPolicy: ClusterFirst
  nodeSelector: {kubernetes.io/os: linux}
  hostname: web-0
  subdomain: web
  schedulerName: default-scheduler
  priorityClassName: high
  priority: 1000
  enableServiceLinks: false
  preemptionPolicy: PreemptLowerPriority
  runtimeClassName: runc
  overhead: {cpu: 250m, memory: 120Mi}
  readinessGates: [{conditionType: example.com/feature-1}]
  imagePullSecrets: [{name: reg}]
  securityContext:
    runAsNonRoot: true
    runAsUser: 1000
    fsGroup: 2000
    seccompProfile: {type: RuntimeDefault}
    sysctls: [{name: net.core.somaxconn, value: "1024"}]
  affinity:
    nodeAffinity:
      requiredDuringSchedulingIgnoredDuringExecution:
        nodeSelectorTerms:
        - matchExpressions: [{key: zone, operator: In, values: [a]}]
  tolerations:
  - {key: nvidia.com/gpu, operator: Exists, effect: NoSchedule}
  - {key: node.kubernetes.io/unreachable, operator: Exists, effect: NoExecute, tolerationSeconds: 300}
  topologySpreadConstraints:
  - {maxSkew: 1, topologyKey: zone, whenUnsatisfiable: DoNotSchedule, labelSelector: {matchLabels: {app: web}}}
  initContainers:
  - name: migrate
    image: registry.example.com/migrate:1.2
    command: ["/bin/sh", "-c"]
    args: ["./migrate up"]
    envFrom:
    - configMapRef: {name: db-config}
    - secretRef: {name: db-creds, optional: true}
      prefix: DB_
  - name: proxy
    image: registry.example.com/proxy:1
    restartPolicy: Always
  containers:
  - name: web
    image: quay.io/example/web:2.0
    imagePullPolicy: IfNotPresent
    workingDir: /srv
    ports:
    - {name: http, containerPort: 8080, protocol: TCP}
    - {name: metrics, containerPort: 9090, hostPort: 19090, hostIP: 127.0.0.1}
    env:
    - {name: RESPONSE, value: "Hello"}
    - name: POD_NAME
      valueFrom: {fieldRef: {fieldPath: metadata.name}}
    - name: CPU_LIMIT
      valueFrom: {resourceFieldRef: {containerName: web, resource: limits.cpu, divisor: 1m}}
    - name: LOG_LEVEL
      valueFrom: {configMapKeyRef: {name: web-config, key: log-level, optional: true}}
    - name: PASSWORD
      valueFrom: {secretKeyRef: {name: db-creds, key: password}}
    resources:
      limits: {cpu: "2", memory: 1Gi, nvidia.com/gpu: 1}
      requests: {cpu: 500m, memory: 256Mi, ephemeral-storage: 1e9}
    volumeMounts:
    - {name: config, mountPath: /etc/web, readOnly: true}
    - {name: cache, mountPath: /cache, subPath: web}
    volumeDevices:
    - {name: raw, devicePath: /dev/xvda}
    livenessProbe:
      httpGet:
        path: /healthz
        port: http
        scheme: HTTP
        httpHeaders: [{name: X-Probe, value: "1"}]
      initialDelaySeconds: 5
      periodSeconds: 10
      timeoutSeconds: 1
      failureThreshold: 3
      terminationGracePeriodSeconds: 10
    readinessProbe:
      tcpSocket: {port: 8080}
      successThreshold: 1
    startupProbe:
      exec: {command: [cat, /tmp/ready]}
    lifecycle:
      preStop: {exec: {command: [/bin/sh, -c, sleep 5]}}
      postStart: {httpGet: {path: /warm, port: 8080}}
    terminationMessagePath: /dev/termination-log
    terminationMessagePolicy: FallbackToLogsOnError
    securityContext:
      allowPrivilegeEscalation: false
      readOnlyRootFilesystem: true
      capabilities: {drop: [ALL]}
    stdin: false
    stdinOnce: false
    tty: false
  - name: grpc
    image: quay.io/example/grpc:1
    livenessProbe: {grpc: {port: 9000, service: health}}
  volumes:
  - name: config
    configMap: {name: web-config, items: [{key: app.yaml, path: app.yaml}], defaultMode: 0644}
  - name: certs
    secret: {secretName: wildcard-certs, optional: false}
  - name: cache
    emptyDir: {medium: Memory, sizeLimit: 64Mi}
  - name: data
    persistentVolumeClaim: {claimName: data, readOnly: false}
  - name: host
    hostPath: {path: /var/log, type: Directory}
  - name: podinfo
    downwardAPI:
      items: [{path: labels, fieldRef: {fieldPath: metadata.labels}}]
  - name: token
    projected:
      sources:
      - serviceAccountToken: {audience: api, expirationSeconds: 3600, path: token}
      - configMap: {name: kube-root-ca.crt, items: [{key: ca.crt, path: ca.crt}]}
      - downwardAPI: {items: [{path: namespace, fieldRef: {apiVersion: v1, fieldPath: metadata.namespace}}]}
  - name: raw
    persistentVolumeClaim: {claimName: raw}
status:
  phase: Running
  podIP: 10.0.0.7
  podIPs: [{ip: 10.0.0.7}]
  conditions: [{type: Ready, status: "True", lastProbeTime: null, lastTransitionTime: "2024-05-01T10:00:00Z"}]
  containerStatuses: [{name: web, ready: true, restartCount: 0, state: {running: {startedAt: "2024-05-01T10:00:00Z"}}}]
"""

DEPLOYMENT_FULL = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: hello-00001-deployment
  namespace: tenant-1
  ownerReferences:
  - {apiVersion: serving.knative.dev/v1, kind: Revision, name: hello-00001, uid: 6f1c0a2e, controller: true, blockOwnerDeletion: true}
spec:
  replicas: 0
  revisionHistoryLimit: 0
  progressDeadlineSeconds: 600
  minReadySeconds: 0
  paused: false
  selector:
    matchLabels: {serving.knative.dev/revisionUID: 6f1c}
  strategy:
    type: RollingUpdate
    rollingUpdate: {maxSurge: 25%, maxUnavailable: 0}
  template:
    metadata:
      labels: {app: hello-00001, serving.knative.dev/revisionUID: 6f1c}
      annotations: {sidecar.istio.io/inject: "true"}
    spec:
      containers:
      - name: user-container
        image: docker.io/openshift/hello-openshift
        ports: [{name: user-port, containerPort: 8080, protocol: TCP}]
        env: [{name: PORT, value: "8080"}, {name: K_REVISION, value: hello-00001}]
        resources: {limits: {nvidia.com/gpu: "1"}}
      - name: queue-proxy
        image: skiff/queue-proxy
        readinessProbe:
          httpGet: {path: /, port: 8012, httpHeaders: [{name: K-Network-Probe, value: queue}]}
          periodSeconds: 1
      enableServiceLinks: false
      terminationGracePeriodSeconds: 300
status:
  observedGeneration: 1
  replicas: 1
  readyReplicas: 1
  conditions: [{type: Available, status: "True", reason: MinimumReplicasAvailable, lastUpdateTime: "2024-05-01T10:00:00Z", lastTransitionTime: "2024-05-01T10:00:00Z"}]
"""

EVENT_FULL = """\
apiVersion: v1
kind: Event
metadata:
  name: hello-00001-deployment-7d9.17c5a3b1d9e0a1b2
  namespace: tenant-1
involvedObject:
  apiVersion: v1
  kind: Pod
  name: hello-00001-deployment-7d9
  namespace: tenant-1
  uid: 0b7c6f1e-3a52-4c8e-9d1a-2f4b5c6d7e8f
  fieldPath: spec.containers{user-container}
reason: BackOff
message: Back-off restarting failed container
source: {component: kubelet, host: node-1}
firstTimestamp: "2024-05-01T10:00:00Z"
lastTimestamp: "2024-05-01T10:05:00Z"
count: 7
type: Warning
eventTime: null
reportingComponent: kubelet
reportingInstance: node-1
"""

CRD_FULL = """\
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: crontabs.stable.example.com
spec:
  group: stable.example.com
  scope: Namespaced
  names:
    plural: crontabs
    singular: crontab
    kind: CronTab
    listKind: CronTabList
    shortNames: [ct]
    categories: [all]
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              cronSpec: {type: string}
              replicas: {type: integer, minimum: 1}
    subresources:
      status: {}
      scale: {specReplicasPath: .spec.replicas, statusReplicasPath: .status.replicas, labelSelectorPath: .status.labelSelector}
    additionalPrinterColumns:
    - {name: Spec, type: string, description: The cron spec, jsonPath: .spec.cronSpec}
    - {name: Replicas, type: integer, jsonPath: .spec.replicas, priority: 1}
    - {name: Age, type: date, jsonPath: .metadata.creationTimestamp}
  - name: v1beta1
    served: true
    storage: false
    deprecated: true
    deprecationWarning: use v1
  conversion:
    strategy: None
  preserveUnknownFields: false
"""

SERVICE_FULL = """\
apiVersion: v1
kind: Service
metadata:
  name: istio-ingressgateway
  namespace: istio-system
spec:
  type: LoadBalancer
  selector: {istio: ingressgateway}
  clusterIP: 10.96.0.10
  clusterIPs: [10.96.0.10]
  ipFamilies: [IPv4]
  ipFamilyPolicy: SingleStack
  externalTrafficPolicy: Local
  internalTrafficPolicy: Cluster
  sessionAffinity: ClientIP
  sessionAffinityConfig: {clientIP: {timeoutSeconds: 10800}}
  loadBalancerIP: 192.0.2.10
  loadBalancerSourceRanges: [0.0.0.0/0]
  externalIPs: [192.0.2.11]
  publishNotReadyAddresses: true
  allocateLoadBalancerNodePorts: true
  ports:
  - {name: https, protocol: TCP, port: 443, targetPort: 8443, nodePort: 30443, appProtocol: https}
  - {name: http2, port: 80, targetPort: http2}
status:
  loadBalancer:
    ingress: [{ip: 192.0.2.10}]
"""

SERVICE_ACCOUNT_FULL = """\
apiVersion: v1
kind: ServiceAccount
metadata: {name: builder, namespace: tenant-1}
secrets: [{name: builder-token}]
imagePullSecrets: [{name: reg}]
automountServiceAccountToken: false
"""

CONFIGMAP_FULL = """\
apiVersion: v1
kind: ConfigMap
metadata: {name: bin, namespace: default}
data: {a: b}
binaryData: {blob: AAEC}
immutable: true
"""

SECRET_STRINGDATA = """\
apiVersion: v1
kind: Secret
metadata:
  name: kafka-auth
  namespace: knative-eventing
  labels: {networking.internal.knative.dev/certificate-uid: "abc"}
type: Opaque
stringData: {user: alice}
immutable: false
"""


def _kind(api_version: str, kind: str) -> Kind:
    group, _, _version = api_version.rpartition("/")
    return next(k for k in KINDS if k.group == group and k.kind == kind)


def _causes(text: str) -> list[dict[str, str]]:
    o = yaml.safe_load(text)
    return [c.as_dict() for c in validate(_kind(o["apiVersion"], o["kind"]).schema, o)]


VALID = [
    *[pytest.param(text, id=f"kubectl-{name}") for name, text in KUBECTL_DRY_RUN.items()],
    pytest.param(SEED_NETPOL_MONITORING, id="seed-1.5-netpol"),
    pytest.param(SEED_NETPOL_SERVING, id="seed-1.6-netpol"),
    pytest.param(NETPOL_FULL, id="netpol-full"),
    pytest.param(POD_FULL, id="pod-full"),
    pytest.param(DEPLOYMENT_FULL, id="deployment-knative"),
    pytest.param(EVENT_FULL, id="event-kubelet"),
    pytest.param(CRD_FULL, id="crd-crontab"),
    pytest.param(SERVICE_FULL, id="service-loadbalancer-full"),
    pytest.param(SERVICE_ACCOUNT_FULL, id="serviceaccount-full"),
    pytest.param(CONFIGMAP_FULL, id="configmap-binary"),
    pytest.param(SECRET_STRINGDATA, id="secret-stringdata"),
]


@pytest.mark.parametrize("text", VALID)
def test_valid_manifests_have_no_causes(text: str) -> None:
    assert _causes(text) == []


def _edit(text: str, path: str, value: Any) -> str:
    """`text` with the dotted/indexed `path` set to `value` (a missing last key is added)."""
    o = yaml.safe_load(text)
    cur: Any = o
    parts = path.replace("]", "").replace("[", ".").split(".")
    for p in parts[:-1]:
        cur = cur[int(p)] if isinstance(cur, list) else cur[p]
    last = parts[-1]
    if value is _DELETE:
        del cur[last]
    elif isinstance(cur, list):
        cur[int(last)] = value
    else:
        cur[last] = value
    return str(yaml.safe_dump(o))


_DELETE = object()
HELLO = KUBECTL_DRY_RUN["deployment-hello"]

# (manifest, path to break, bad value, expected field, expected reason, text in message)
INVALID = [
    pytest.param(HELLO, "spec.template.spec.containers[0].imagee", "x",
                 "spec.template.spec.containers[0].imagee", "FieldValueInvalid",
                 'unknown field "spec.template.spec.containers[0].imagee" (did you mean "image"?)',
                 id="deploy-unknown-imagee"),
    pytest.param(HELLO, "spec.replicas", "two", "spec.replicas", "FieldValueTypeInvalid",
                 "must be of type integer", id="deploy-replicas-string"),
    pytest.param(HELLO, "spec.replicas", -1, "spec.replicas", "FieldValueInvalid",
                 "greater than or equal to 0", id="deploy-replicas-negative"),
    pytest.param(HELLO, "spec.template.spec.containers[0].env", {"A": "b"},
                 "spec.template.spec.containers[0].env", "FieldValueTypeInvalid",
                 "must be of type array", id="deploy-env-not-list"),
    pytest.param(HELLO, "spec.template.spec.containers[0].env", [{"value": "b"}],
                 "spec.template.spec.containers[0].env[0].name", "FieldValueRequired",
                 "Required value", id="deploy-env-without-name"),
    pytest.param(HELLO, "spec.template.spec.containers", _DELETE,
                 "spec.template.spec.containers", "FieldValueRequired", "Required value",
                 id="deploy-no-containers"),
    pytest.param(HELLO, "spec.template.spec.containers[0].resources",
                 {"limits": {"cpu": "1 core"}},
                 "spec.template.spec.containers[0].resources.limits.cpu", "FieldValueInvalid",
                 "quantities must match", id="deploy-bad-quantity"),
    pytest.param(HELLO, "spec.template.spec.restartPolicy", "Sometimes",
                 "spec.template.spec.restartPolicy", "FieldValueNotSupported",
                 '"Always", "OnFailure", "Never"', id="deploy-restart-policy"),
    pytest.param(HELLO, "spec.strategy", {"type": "Rolling"}, "spec.strategy.type",
                 "FieldValueNotSupported", "Unsupported value", id="deploy-strategy-type"),
    pytest.param(HELLO, "spec.template.spec.containers[0].ports", [{"containerPort": "http"}],
                 "spec.template.spec.containers[0].ports[0].containerPort",
                 "FieldValueTypeInvalid", "must be of type integer", id="deploy-port-string"),
    pytest.param(HELLO, "spec.template.spec.containers[0].livenessProbe",
                 {"httpGet": {"path": "/"}},
                 "spec.template.spec.containers[0].livenessProbe.httpGet.port",
                 "FieldValueRequired", "Required value", id="deploy-probe-no-port"),
    # A key at the wrong depth: `image` one level too far out, inside spec.template.spec.
    pytest.param(HELLO, "spec.template.spec.image", "nginx", "spec.template.spec.image",
                 "FieldValueInvalid", 'unknown field "spec.template.spec.image"',
                 id="deploy-misindented-image"),
    pytest.param(KUBECTL_DRY_RUN["service-clusterip"], "spec.type", "Clusterip", "spec.type",
                 "FieldValueNotSupported", '"ClusterIP", "NodePort"', id="svc-type"),
    pytest.param(KUBECTL_DRY_RUN["service-clusterip"], "spec.ports[0].port", 70000,
                 "spec.ports[0].port", "FieldValueInvalid", "less than or equal to 65535",
                 id="svc-port-range"),
    pytest.param(KUBECTL_DRY_RUN["secret-generic"], "data", ["a"], "data",
                 "FieldValueTypeInvalid", "must be of type object", id="secret-data-list"),
    pytest.param(KUBECTL_DRY_RUN["secret-generic"], "spec", {"data": {}}, "spec",
                 "FieldValueInvalid", 'unknown field "spec"', id="secret-spec"),
    pytest.param(KUBECTL_DRY_RUN["configmap"], "data", {"n": 1}, "data.n",
                 "FieldValueTypeInvalid", "must be of type string", id="configmap-int-value"),
    # Section 1.6 with the callout number left after `ingress:` on the same line.
    pytest.param(SEED_NETPOL_SERVING, "spec.ingress", 1, "spec.ingress",
                 "FieldValueTypeInvalid", "is a callout number left after the colon",
                 id="seed-netpol-callout"),
    # Section 1.5 with podSelector indented into the ingress rule.
    pytest.param(SEED_NETPOL_MONITORING, "spec.ingress[0].podSelector", {},
                 "spec.ingress[0].podSelector", "FieldValueInvalid",
                 'unknown field "spec.ingress[0].podSelector"', id="seed-netpol-misindented"),
    pytest.param(SEED_NETPOL_SERVING, "spec.policyTypes", ["ingress"], "spec.policyTypes[0]",
                 "FieldValueNotSupported", '"Ingress", "Egress"', id="netpol-policy-type-case"),
    pytest.param(NETPOL_FULL, "spec.ingress[0].from[0].ipBlock", {"except": []},
                 "spec.ingress[0].from[0].ipBlock.cidr", "FieldValueRequired", "Required value",
                 id="netpol-ipblock-no-cidr"),
    pytest.param(KUBECTL_DRY_RUN["namespace"], "spec.finalizer", ["kubernetes"],
                 "spec.finalizer", "FieldValueInvalid", '(did you mean "finalizers"?)',
                 id="ns-finalizer-typo"),
    pytest.param(CRD_FULL, "spec.scope", "namespaced", "spec.scope", "FieldValueNotSupported",
                 '"Cluster", "Namespaced"', id="crd-scope-case"),
    pytest.param(CRD_FULL, "spec.versions[0].additionalPrinterColumns[0].jsonpath", ".x",
                 "spec.versions[0].additionalPrinterColumns[0].jsonpath", "FieldValueInvalid",
                 '(did you mean "jsonPath"?)', id="crd-column-jsonpath-case"),
    pytest.param(EVENT_FULL, "count", "7", "count", "FieldValueTypeInvalid",
                 "must be of type integer", id="event-count-string"),
    pytest.param(POD_FULL, "spec.containers[0].volumeMounts[0].mountPath", _DELETE,
                 "spec.containers[0].volumeMounts[0].mountPath", "FieldValueRequired",
                 "Required value", id="pod-mount-no-path"),
    pytest.param(POD_FULL, "spec.volumes[0].configMap.item", [], "spec.volumes[0].configMap.item",
                 "FieldValueInvalid", '(did you mean "items"?)', id="pod-volume-items-typo"),
    pytest.param(POD_FULL, "spec.tolerations[0].operator", "Exist",
                 "spec.tolerations[0].operator", "FieldValueNotSupported", '"Exists", "Equal"',
                 id="pod-toleration-operator"),
]


@pytest.mark.parametrize(("text", "path", "value", "field", "reason", "message"), INVALID)
def test_invalid_manifests_name_the_field(text: str, path: str, value: Any, field: str,
                                          reason: str, message: str) -> None:
    causes = _causes(_edit(text, path, value))
    assert [c["field"] for c in causes] == [field], causes
    assert causes[0]["reason"] == reason
    assert message in causes[0]["message"]


def test_pod_with_several_mistakes_reports_each() -> None:
    o = yaml.safe_load(POD_FULL)
    c = o["spec"]["containers"][0]
    c["imagee"] = c.pop("image")
    c["ports"][0]["containerPort"] = "8080"
    o["spec"]["restartPolicy"] = "always"
    fields = sorted(x.field for x in validate(_kind("v1", "Pod").schema, o))
    assert fields == ["spec.containers[0].imagee", "spec.containers[0].ports[0].containerPort",
                      "spec.restartPolicy"]


# (kind, group, plural, namespaced, short names, categories, status subresource, extra subresources, name rule)
FACTS = [
    ("Namespace", "", "namespaces", False, ("ns",), (), True, (), "dns1123-label"),
    ("Node", "", "nodes", False, ("no",), (), True, (), "dns1123-subdomain"),
    ("Lease", "coordination.k8s.io", "leases", True, (), (), False, (), "dns1123-subdomain"),
    ("ConfigMap", "", "configmaps", True, ("cm",), (), False, (), "dns1123-subdomain"),
    ("Secret", "", "secrets", True, (), (), False, (), "dns1123-subdomain"),
    ("ServiceAccount", "", "serviceaccounts", True, ("sa",), (), False, ("token",),
     "dns1123-subdomain"),
    ("Service", "", "services", True, ("svc",), ("all",), True, (), "dns1035-label"),
    ("Pod", "", "pods", True, ("po",), ("all",), True, ("exec", "log", "portforward"), "dns1123-subdomain"),
    ("Event", "", "events", True, ("ev",), (), False, (), "dns1123-subdomain"),
    ("Deployment", "apps", "deployments", True, ("deploy",), ("all",), True, ("scale",),
     "dns1123-subdomain"),
    ("ReplicaSet", "apps", "replicasets", True, ("rs",), ("all",), True, ("scale",),
     "dns1123-subdomain"),
    ("DaemonSet", "apps", "daemonsets", True, ("ds",), ("all",), True, (), "dns1123-subdomain"),
    ("StatefulSet", "apps", "statefulsets", True, ("sts",), ("all",), True, ("scale",),
     "dns1123-subdomain"),
    ("ControllerRevision", "apps", "controllerrevisions", True, (), (), False, (),
     "dns1123-subdomain"),
    ("Job", "batch", "jobs", True, (), ("all",), True, (), "dns1123-subdomain"),
    ("CronJob", "batch", "cronjobs", True, ("cj",), ("all",), True, (), "dns1123-subdomain"),
    ("NetworkPolicy", "networking.k8s.io", "networkpolicies", True, ("netpol",), (), False, (),
     "dns1123-subdomain"),
    ("Endpoints", "", "endpoints", True, ("ep",), (), False, (), "dns1123-subdomain"),
    ("EndpointSlice", "discovery.k8s.io", "endpointslices", True, (), (), False, (),
     "dns1123-subdomain"),
    ("CustomResourceDefinition", "apiextensions.k8s.io", "customresourcedefinitions", False,
     ("crd", "crds"), ("api-extensions",), True, (), "dns1123-subdomain"),
]


@pytest.mark.parametrize(("kind", "group", "plural", "namespaced", "short", "categories",
                          "status", "extra", "name_rule"), FACTS, ids=[f[0] for f in FACTS])
def test_kind_facts(kind: str, group: str, plural: str, namespaced: bool, short: tuple[str, ...],
                    categories: tuple[str, ...], status: bool, extra: tuple[str, ...],
                    name_rule: str) -> None:
    k = next(k for k in KINDS if k.kind == kind)
    assert (k.group, k.plural, k.namespaced, k.short_names, k.categories) == (
        group, plural, namespaced, short, categories)
    assert (k.status_subresource, k.extra_subresources, k.name_rule) == (status, extra, name_rule)
    assert k.builtin and k.version == "v1" and k.printer_columns is None
    assert k.singular == kind.lower()


def test_every_kind_is_listed_once_and_registers() -> None:
    assert sorted(k.kind for k in KINDS) == sorted(f[0] for f in FACTS)
    reg = Kinds()
    for k in KINDS:
        reg.add(k)
    assert reg.for_path("apps", "v1", "deployments") is not None
    assert reg.for_api_version("v1", "Pod") is not None
    shorts = [s for k in KINDS for s in k.short_names]
    assert len(shorts) == len(set(shorts))


@pytest.mark.parametrize("k", KINDS, ids=[k.kind for k in KINDS])
def test_schema_envelope(k: Kind) -> None:
    props = k.schema["properties"]
    assert k.schema["type"] == "object"
    assert {"apiVersion", "kind", "metadata"} <= set(props)
    # A status field exactly where the kind has one upstream.
    has_status = k.kind in {"Namespace", "Node", "Service", "Pod", "Deployment", "ReplicaSet",
                            "CustomResourceDefinition", "DaemonSet", "StatefulSet", "Job",
                            "CronJob"}
    assert ("status" in props) == has_status
    minimal = {"apiVersion": k.api_version, "kind": k.kind, "metadata": {"name": "x"}}
    expected_missing = {"Event": ["involvedObject"],
                        "ControllerRevision": ["revision"],
                        "EndpointSlice": ["addressType", "endpoints"]}.get(k.kind, [])
    assert [c.field for c in validate(k.schema, minimal)] == expected_missing
