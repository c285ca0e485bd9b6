"""Service Mesh resource kinds: Istio networking/security and Maistra, as data.

networking.istio.io (v1alpha3 stored, v1beta1 served): Gateway,
VirtualService, DestinationRule, ServiceEntry. security.istio.io (v1beta1
stored, v1 served, one schema, as Istio 1.22+'s CRDs): AuthorizationPolicy,
PeerAuthentication. maistra.io: ServiceMeshControlPlane
(v2 stored, v1 served), ServiceMeshMemberRoll and ServiceMeshMember (v1).
Names, short names, categories and printer columns follow the CRDs of Istio
1.16 / OpenShift Service Mesh 2.4 (istio manifests/charts/base/crds,
maistra/istio-operator manifests-maistra); Istio 1.16 gives Gateway and
AuthorizationPolicy no printer columns and AuthorizationPolicy no short name.

Istio's CRDs are nearly schemaless and leave checking to its webhook; here
the fields users write are typed (unknown fields are errors, enums are
closed) so that the Serverless guide's typing errors are reported with a
field path. Deep, rarely written corners (fault injection, CORS, outlier
detection, SMCP runtime/pod overrides, techPreview) stay open (ANY) and say so.

Neighbours: the mesh modules of DESIGN's layout (gateway.py, authz/,
peerauth.py, membership.py) read these objects; core/kinds.py (Kind,
crd_for); core/schema_pod.py (RESOURCES and TOLERATION for the SMCP's
component overrides). Pure data.
"""

from __future__ import annotations

from dataclasses import replace

from skiff.core.kinds import Kind, PrinterColumn
from skiff.core.schema import (
    ANY,
    BOOL,
    CONDITION,
    INT,
    INT_OR_STR,
    LABEL_SELECTOR,
    NUM,
    STR,
    STR_LIST,
    STR_MAP,
    Schema,
    arr,
    enum,
    map_of,
    obj,
    open_obj,
    resource,
)
from skiff.core.schema_pod import RESOURCES, TOLERATION, int_range

__all__ = ["KINDS", "SERVER", "SMCP_SPEC"]

NETWORKING = "networking.istio.io"
SECURITY = "security.istio.io"
MAISTRA = "maistra.io"

PORT_NUMBER = int_range(0, 65535)
WORKLOAD_SELECTOR = obj({"matchLabels": STR_MAP})

# Istio parses protocols case-insensitively; the usual spellings are listed.
_PROTOCOLS = ("HTTP", "HTTPS", "GRPC", "GRPC-WEB", "HTTP2", "MONGO", "MYSQL", "REDIS", "TCP",
              "TLS", "UDP")
PROTOCOL = enum(*_PROTOCOLS, *(p.lower() for p in _PROTOCOLS), "Http", "Https", "Tcp", "Tls")

# --- networking.istio.io -----------------------------------------------------------

SERVER_TLS = obj({
    "httpsRedirect": BOOL,
    "mode": enum("PASSTHROUGH", "SIMPLE", "MUTUAL", "AUTO_PASSTHROUGH", "ISTIO_MUTUAL",
                 "OPTIONAL_MUTUAL"),
    "serverCertificate": STR,
    "privateKey": STR,
    "caCertificates": STR,
    "credentialName": STR,
    "subjectAltNames": STR_LIST,
    "verifyCertificateSpki": STR_LIST,
    "verifyCertificateHash": STR_LIST,
    "minProtocolVersion": enum("TLS_AUTO", "TLSV1_0", "TLSV1_1", "TLSV1_2", "TLSV1_3"),
    "maxProtocolVersion": enum("TLS_AUTO", "TLSV1_0", "TLSV1_1", "TLSV1_2", "TLSV1_3"),
    "cipherSuites": STR_LIST,
})

SERVER = obj({
    "port": obj({"number": PORT_NUMBER, "protocol": PROTOCOL, "name": STR,
                 "targetPort": PORT_NUMBER}, required=("number", "protocol", "name")),
    "bind": STR,
    "hosts": STR_LIST,
    "tls": SERVER_TLS,
    "defaultEndpoint": STR,
    "name": STR,
}, required=("port", "hosts"))

GATEWAY = resource(obj({"servers": arr(SERVER), "selector": STR_MAP}))

STRING_MATCH = obj({"exact": STR, "prefix": STR, "regex": STR})
PORT_SELECTOR = obj({"number": PORT_NUMBER})
HEADER_OPS = obj({"set": STR_MAP, "add": STR_MAP, "remove": STR_LIST})
HEADERS = obj({"request": HEADER_OPS, "response": HEADER_OPS})
DESTINATION = obj({"host": STR, "subset": STR, "port": PORT_SELECTOR}, required=("host",))
PERCENT = obj({"value": NUM})

HTTP_MATCH = obj({
    "name": STR, "uri": STRING_MATCH, "scheme": STRING_MATCH, "method": STRING_MATCH,
    "authority": STRING_MATCH, "headers": map_of(STRING_MATCH), "port": PORT_NUMBER,
    "sourceLabels": STR_MAP, "gateways": STR_LIST, "queryParams": map_of(STRING_MATCH),
    "ignoreUriCase": BOOL, "withoutHeaders": map_of(STRING_MATCH), "sourceNamespace": STR,
    "statPrefix": STR,
})

HTTP_ROUTE = obj({
    "name": STR,
    "match": arr(HTTP_MATCH),
    "route": arr(obj({"destination": DESTINATION, "weight": INT, "headers": HEADERS})),
    "redirect": obj({"uri": STR, "authority": STR, "port": PORT_NUMBER,
                     "derivePort": enum("FROM_PROTOCOL_DEFAULT", "FROM_REQUEST_PORT"),
                     "scheme": STR, "redirectCode": INT}),
    "directResponse": obj({"status": INT, "body": obj({"string": STR, "bytes": STR})},
                          required=("status",)),
    "delegate": obj({"name": STR, "namespace": STR}),
    "rewrite": obj({"uri": STR, "authority": STR}),
    "timeout": STR,
    "retries": obj({"attempts": INT, "perTryTimeout": STR, "retryOn": STR,
                    "retryRemoteLocalities": BOOL}),
    "fault": ANY,        # delay/abort injection: not modelled by skiff's data plane
    "mirror": DESTINATION,
    "mirrorPercentage": PERCENT,
    "mirrors": arr(obj({"destination": DESTINATION, "percentage": PERCENT})),
    "corsPolicy": ANY,   # browser CORS: passed through, not enforced
    "headers": HEADERS,
})

L4_MATCH = {"destinationSubnets": STR_LIST, "port": PORT_NUMBER, "sourceLabels": STR_MAP,
            "gateways": STR_LIST, "sourceNamespace": STR}
ROUTE_DESTINATION = obj({"destination": DESTINATION, "weight": INT})

VIRTUAL_SERVICE = resource(obj({
    "hosts": STR_LIST,
    "gateways": STR_LIST,
    "http": arr(HTTP_ROUTE),
    "tls": arr(obj({"match": arr(obj({"sniHosts": STR_LIST, **L4_MATCH})),
                    "route": arr(ROUTE_DESTINATION)})),
    "tcp": arr(obj({"match": arr(obj(L4_MATCH)), "route": arr(ROUTE_DESTINATION)})),
    "exportTo": STR_LIST,
}))

CLIENT_TLS = obj({
    "mode": enum("DISABLE", "SIMPLE", "MUTUAL", "ISTIO_MUTUAL"),
    "clientCertificate": STR, "privateKey": STR, "caCertificates": STR, "credentialName": STR,
    "subjectAltNames": STR_LIST, "sni": STR, "insecureSkipVerify": BOOL,
})

TRAFFIC_POLICY = obj({
    "loadBalancer": ANY,       # simple/consistentHash/locality settings: passed through
    "connectionPool": ANY,     # envoy circuit-breaker limits: passed through
    "outlierDetection": ANY,   # ejection tuning: passed through
    "tls": CLIENT_TLS,
    "portLevelSettings": arr(open_obj({"port": PORT_SELECTOR, "tls": CLIENT_TLS})),
    "tunnel": ANY,
})

DESTINATION_RULE = resource(obj({
    "host": STR,
    "trafficPolicy": TRAFFIC_POLICY,
    "subsets": arr(obj({"name": STR, "labels": STR_MAP, "trafficPolicy": TRAFFIC_POLICY},
                       required=("name",))),
    "exportTo": STR_LIST,
    "workloadSelector": WORKLOAD_SELECTOR,
}, required=("host",)))

SERVICE_ENTRY = resource(obj({
    "hosts": STR_LIST,
    "addresses": STR_LIST,
    # Port names must be unique (Istio's webhook rejects a repeated name).
    "ports": {**arr(obj({"number": PORT_NUMBER, "protocol": PROTOCOL, "name": STR,
                         "targetPort": PORT_NUMBER}, required=("number", "name"))),
              "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
    "location": enum("MESH_EXTERNAL", "MESH_INTERNAL"),
    "resolution": enum("NONE", "STATIC", "DNS", "DNS_ROUND_ROBIN"),
    "endpoints": arr(obj({
        "address": STR, "ports": map_of(PORT_NUMBER), "labels": STR_MAP, "network": STR,
        "locality": STR, "weight": INT, "serviceAccount": STR,
    })),
    "workloadSelector": obj({"labels": STR_MAP}),
    "exportTo": STR_LIST,
    "subjectAltNames": STR_LIST,
}, required=("hosts",)))

# --- security.istio.io ---------------------------------------------------------------

TARGET_REF = obj({"group": STR, "kind": STR, "name": STR, "namespace": STR},
                 required=("kind", "name"))

SOURCE = obj({
    "principals": STR_LIST, "notPrincipals": STR_LIST,
    "requestPrincipals": STR_LIST, "notRequestPrincipals": STR_LIST,
    "namespaces": STR_LIST, "notNamespaces": STR_LIST,
    "ipBlocks": STR_LIST, "notIpBlocks": STR_LIST,
    "remoteIpBlocks": STR_LIST, "notRemoteIpBlocks": STR_LIST,
})

OPERATION = obj({
    "hosts": STR_LIST, "notHosts": STR_LIST,
    "ports": STR_LIST, "notPorts": STR_LIST,
    "methods": STR_LIST, "notMethods": STR_LIST,
    "paths": STR_LIST, "notPaths": STR_LIST,
})

RULE = obj({
    "from": arr(obj({"source": SOURCE})),
    "to": arr(obj({"operation": OPERATION})),
    "when": arr(obj({"key": STR, "values": STR_LIST, "notValues": STR_LIST}, required=("key",))),
})

AUTHORIZATION_POLICY = resource(obj({
    "selector": WORKLOAD_SELECTOR,
    "targetRef": TARGET_REF,
    "targetRefs": arr(TARGET_REF),
    "rules": arr(RULE),
    "action": enum("ALLOW", "DENY", "AUDIT", "CUSTOM"),
    "provider": obj({"name": STR}),
}))

MTLS = obj({"mode": enum("UNSET", "DISABLE", "PERMISSIVE", "STRICT")})

PEER_AUTHENTICATION = resource(obj({
    "selector": WORKLOAD_SELECTOR,
    "mtls": MTLS,
    "portLevelMtls": map_of(MTLS),
}))

# --- maistra.io ------------------------------------------------------------------------

# Deployment/pod/container overrides of control-plane components (maistra
# v2 ComponentRuntimeConfig): the common knobs typed, pod internals open.
_META = obj({"labels": STR_MAP, "annotations": STR_MAP})
_CONTAINER_CONFIG = obj({
    "imagePullPolicy": STR, "imagePullSecrets": arr(obj({"name": STR})),
    "imageRegistry": STR, "imageName": STR, "imageTag": STR, "image": STR,
    "resources": RESOURCES, "env": STR_MAP,
})
COMPONENT_RUNTIME = obj({
    "deployment": obj({
        "replicas": INT,
        "strategy": ANY,   # apps/v1 DeploymentStrategy
        "autoScaling": obj({"enabled": BOOL, "minReplicas": INT, "maxReplicas": INT,
                            "targetCPUUtilizationPercentage": INT}),
    }),
    "pod": obj({
        "metadata": _META, "nodeSelector": STR_MAP, "affinity": ANY,
        "tolerations": arr(TOLERATION), "priorityClassName": STR,
        "containers": map_of(_CONTAINER_CONFIG),
    }),
    "container": _CONTAINER_CONFIG,
})

SERVICE_PORT = obj({"name": STR, "port": INT, "targetPort": INT_OR_STR, "nodePort": INT,
                    "protocol": STR, "appProtocol": STR}, required=("port",))

GATEWAY_CONFIG: dict[str, Schema] = {
    "enabled": BOOL,
    "service": obj({
        "metadata": _META,
        "ports": arr(SERVICE_PORT),
        "type": enum("ClusterIP", "NodePort", "LoadBalancer", "ExternalName"),
        "loadBalancerIP": STR, "loadBalancerSourceRanges": STR_LIST,
        "externalName": STR, "externalIPs": STR_LIST, "externalTrafficPolicy": STR,
        "ipFamilies": STR_LIST, "ipFamilyPolicy": STR, "clusterIP": STR,
    }),
    "runtime": COMPONENT_RUNTIME,
    "namespace": STR,
    "routerMode": enum("sni-dnat", "standard"),
    "requestedNetworkView": STR_LIST,
    "volumes": arr(obj({"volume": ANY, "volumeMount": ANY})),  # core/v1 Volume/VolumeMount
    "routeConfig": obj({"enabled": BOOL}),
}
INGRESS_GATEWAY = obj({**GATEWAY_CONFIG, "meshExpansionPorts": arr(SERVICE_PORT),
                       "ingress": BOOL, "sds": obj({"enabled": BOOL, "runtime": ANY})})
EGRESS_GATEWAY = obj(GATEWAY_CONFIG)

_ADDON_INSTALL = ANY  # the add-ons' own install settings: Kiali/Grafana/Prometheus/Jaeger CRs

SMCP_SPEC = obj({
    "profiles": STR_LIST,
    "version": STR,
    "mode": enum("MultiTenant", "ClusterWide"),
    "cluster": obj({
        "name": STR, "network": STR,
        "multiCluster": ANY,   # multi-cluster federation: out of skiff's scope
        "meshExpansion": ANY,
    }),
    "general": obj({
        "logging": obj({"componentLevels": STR_MAP, "logAsJSON": BOOL}),
        "validationMessages": BOOL,
    }),
    "policy": obj({"type": enum("None", "Istiod", "Mixer", "Remote"), "mixer": ANY,
                   "remote": ANY}),
    "telemetry": obj({"type": enum("None", "Istiod", "Mixer", "Remote"), "mixer": ANY,
                      "remote": ANY}),
    "proxy": obj({
        "logging": obj({"level": STR, "componentLevels": STR_MAP}),
        "networking": obj({
            "clusterDomain": STR,
            "connectionTimeout": STR,
            "maxConnectionAge": STR,
            "initialization": obj({"type": enum("CNI", "InitContainer"),
                                   "initContainer": obj({"runtime": ANY})}),
            "trafficControl": obj({
                "inbound": obj({
                    "interceptionMode": enum("REDIRECT", "TPROXY"),
                    "includedPorts": STR_LIST,
                    "excludedPorts": arr(INT),
                }),
                "outbound": obj({
                    "includedIPRanges": STR_LIST,
                    "excludedIPRanges": STR_LIST,
                    "excludedPorts": arr(INT),
                    "policy": enum("ALLOW_ANY", "REGISTRY_ONLY"),
                }),
            }),
            "protocol": obj({"detectionTimeout": STR, "debug": ANY,
                             "autoDetect": obj({"inbound": BOOL, "outbound": BOOL})}),
            "dns": obj({"searchSuffixes": STR_LIST, "refreshRate": STR}),
        }),
        "runtime": obj({
            "container": _CONTAINER_CONFIG,
            "readiness": obj({"statusPort": INT, "initialDelaySeconds": INT,
                              "periodSeconds": INT, "failureThreshold": INT,
                              "rewriteApplicationProbes": BOOL}),
        }),
        "injection": obj({"autoInject": BOOL, "alwaysInjectSelector": arr(LABEL_SELECTOR),
                          "neverInjectSelector": arr(LABEL_SELECTOR),
                          "injectedAnnotations": STR_MAP}),
        "adminPort": INT,
        "concurrency": INT,
        "accessLogging": obj({
            "file": obj({"name": STR, "encoding": enum("TEXT", "JSON"), "format": STR}),
            "envoyService": ANY,
        }),
        "envoyMetricsService": ANY,
    }),
    "security": obj({
        "trust": obj({"domain": STR, "additionalDomains": STR_LIST}),
        "certificateAuthority": obj({
            "type": enum("Istiod", "Custom", "cert-manager"),
            "istiod": obj({
                "type": enum("SelfSigned", "PrivateKey"),
                "selfSigned": obj({"ttl": STR, "gracePeriod": STR, "checkPeriod": STR,
                                   "enableJitter": BOOL}),
                "privateKey": obj({"rootCADir": STR}),
                "workloadCertTTLDefault": STR, "workloadCertTTLMax": STR,
            }),
            "custom": obj({"address": STR}),
            "certManager": obj({"address": STR, "pilotSecretName": STR,
                                "rootCAConfigMapName": STR}),
        }),
        "identity": obj({"type": enum("Kubernetes", "ThirdParty"),
                         "thirdParty": obj({"issuer": STR, "audience": STR})}),
        "controlPlane": obj({
            "mtls": BOOL,
            "tls": obj({"minProtocolVersion": STR, "maxProtocolVersion": STR,
                        "cipherSuites": STR_LIST, "ecdhCurves": STR_LIST}),
            "certProvider": enum("Istiod", "Kubernetes", "Custom"),
        }),
        "dataPlane": obj({"mtls": BOOL, "automtls": BOOL}),
        "manageNetworkPolicy": BOOL,
        "jwksResolverCA": STR,
    }),
    "tracing": obj({"type": enum("None", "Jaeger", "Stackdriver", "Zipkin"),
                    "sampling": int_range(0, 10000)}),
    "gateways": obj({
        "enabled": BOOL,
        "ingress": INGRESS_GATEWAY,
        "egress": EGRESS_GATEWAY,
        "clusterLocal": obj({**GATEWAY_CONFIG}),
        "additionalIngress": map_of(INGRESS_GATEWAY),
        "additionalEgress": map_of(EGRESS_GATEWAY),
        "openshiftRoute": obj({"enabled": BOOL}),
        "ingressController": ANY,
    }),
    "runtime": obj({"components": map_of(COMPONENT_RUNTIME),
                    "defaults": obj({"deployment": ANY, "pod": ANY,
                                     "container": _CONTAINER_CONFIG})}),
    "addons": obj({
        "prometheus": obj({"enabled": BOOL, "address": STR, "scrape": BOOL,
                           "install": _ADDON_INSTALL}),
        "grafana": obj({"enabled": BOOL, "address": STR, "install": _ADDON_INSTALL}),
        "kiali": obj({"enabled": BOOL, "name": STR, "install": _ADDON_INSTALL}),
        "jaeger": obj({"name": STR, "install": _ADDON_INSTALL}),
        "3scale": ANY,
        "stackdriver": ANY,
    }),
    "meshConfig": obj({
        "discoverySelectors": arr(LABEL_SELECTOR),
        "extensionProviders": arr(ANY),   # ext-authz/tracing providers, one schema each
    }),
    # Upstream keeps techPreview free-form: any Istio meshConfig/values override.
    "techPreview": ANY,
    # The v1 API's Helm-values style fields, accepted when a v1 object is served as v2.
    "istio": ANY,
    "template": STR,
    "threeScale": ANY,
    "networkType": STR,
})

SMCP_STATUS = open_obj({
    "observedGeneration": INT, "conditions": arr(CONDITION), "annotations": STR_MAP,
    "chartVersion": STR, "operatorVersion": STR,
    "appliedSpec": open_obj(), "appliedValues": open_obj(), "readiness": open_obj(),
    "components": arr(open_obj()),
})

SMMR = resource(obj({
    "members": STR_LIST,
    "memberSelectors": arr(LABEL_SELECTOR),
}), status=open_obj({
    "observedGeneration": INT, "conditions": arr(CONDITION), "annotations": STR_MAP,
    "members": STR_LIST, "configuredMembers": STR_LIST, "pendingMembers": STR_LIST,
    "terminatingMembers": STR_LIST, "memberStatuses": arr(open_obj()),
    "meshGeneration": INT, "meshReconciledVersion": STR,
}))

SMM = resource(obj({
    "controlPlaneRef": obj({"name": STR, "namespace": STR}, required=("name", "namespace")),
}, required=("controlPlaneRef",)))

# --- the kinds -------------------------------------------------------------------------

_ISTIO_NET = ("istio-io", "networking-istio-io")
_ISTIO_SEC = ("istio-io", "security-istio-io")
_NET_VERSIONS = ("v1alpha3", "v1beta1")
# Istio 1.22 made the security API v1 (istio manifests/charts/base/crds: v1 served, v1beta1
# served and stored, the same schema); discovery prefers v1, as a cluster with those CRDs does.
_SEC_VERSIONS = ("v1beta1", "v1")
_AGE_DESCRIPTION = (
    "CreationTimestamp is a timestamp representing the server time when this object was "
    "created. It is not guaranteed to be set in happens-before order across separate "
    "operations. Clients may not set this value. It is represented in RFC3339 form and is in "
    "UTC. Populated by the system. Read-only. Null for lists. More info: "
    "https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata")
_ISTIO_AGE = PrinterColumn("Age", ".metadata.creationTimestamp", type="date",
                           description=_AGE_DESCRIPTION)
_MAISTRA_AGE = PrinterColumn("Age", ".metadata.creationTimestamp", type="date",
                             description="The age of the object")

KINDS: list[Kind] = [
    Kind(group=NETWORKING, version="v1alpha3", versions=_NET_VERSIONS, kind="Gateway",
         plural="gateways", singular="gateway", namespaced=True, schema=GATEWAY,
         short_names=("gw",), categories=_ISTIO_NET, crd_name=f"gateways.{NETWORKING}",
         printer_columns=()),
    Kind(group=NETWORKING, version="v1alpha3", versions=_NET_VERSIONS, kind="VirtualService",
         plural="virtualservices", singular="virtualservice", namespaced=True,
         schema=VIRTUAL_SERVICE, short_names=("vs",), categories=_ISTIO_NET,
         crd_name=f"virtualservices.{NETWORKING}",
         printer_columns=(
             PrinterColumn("Gateways", ".spec.gateways",
                           description="The names of gateways and sidecars that should apply "
                                       "these routes"),
             PrinterColumn("Hosts", ".spec.hosts",
                           description="The destination hosts to which traffic is being sent"),
             _ISTIO_AGE,
         )),
    Kind(group=NETWORKING, version="v1alpha3", versions=_NET_VERSIONS, kind="DestinationRule",
         plural="destinationrules", singular="destinationrule", namespaced=True,
         schema=DESTINATION_RULE, short_names=("dr",), categories=_ISTIO_NET,
         crd_name=f"destinationrules.{NETWORKING}",
         printer_columns=(
             PrinterColumn("Host", ".spec.host",
                           description="The name of a service from the service registry"),
             _ISTIO_AGE,
         )),
    Kind(group=NETWORKING, version="v1alpha3", versions=_NET_VERSIONS, kind="ServiceEntry",
         plural="serviceentries", singular="serviceentry", namespaced=True,
         schema=SERVICE_ENTRY, short_names=("se",), categories=_ISTIO_NET,
         crd_name=f"serviceentries.{NETWORKING}",
         printer_columns=(
             PrinterColumn("Hosts", ".spec.hosts",
                           description="The hosts associated with the ServiceEntry"),
             PrinterColumn("Location", ".spec.location",
                           description="Whether the service is external to the mesh or part "
                                       "of the mesh (MESH_EXTERNAL or MESH_INTERNAL)"),
             PrinterColumn("Resolution", ".spec.resolution",
                           description="Service discovery mode for the hosts (NONE, STATIC, "
                                       "or DNS)"),
             _ISTIO_AGE,
         )),
    Kind(group=SECURITY, version="v1beta1", versions=_SEC_VERSIONS, kind="AuthorizationPolicy",
         plural="authorizationpolicies", singular="authorizationpolicy", namespaced=True,
         schema=AUTHORIZATION_POLICY, categories=_ISTIO_SEC,
         crd_name=f"authorizationpolicies.{SECURITY}", printer_columns=()),
    Kind(group=SECURITY, version="v1beta1", versions=_SEC_VERSIONS, kind="PeerAuthentication",
         plural="peerauthentications", singular="peerauthentication", namespaced=True,
         schema=PEER_AUTHENTICATION, short_names=("pa",), categories=_ISTIO_SEC,
         crd_name=f"peerauthentications.{SECURITY}",
         printer_columns=(
             PrinterColumn("Mode", ".spec.mtls.mode",
                           description="Defines the mTLS mode used for peer authentication."),
             _ISTIO_AGE,
         )),
    Kind(group=MAISTRA, version="v2", versions=("v2", "v1"), kind="ServiceMeshControlPlane",
         plural="servicemeshcontrolplanes", singular="servicemeshcontrolplane", namespaced=True,
         schema=resource(SMCP_SPEC, status=SMCP_STATUS), short_names=("smcp",),
         categories=("maistra-io",), crd_name=f"servicemeshcontrolplanes.{MAISTRA}",
         printer_columns=(
             PrinterColumn("Ready", ".status.annotations.readyComponentCount",
                           description="How many of the total number of components are ready"),
             PrinterColumn("Status", '.status.conditions[?(@.type=="Ready")].reason',
                           description="Whether or not the control plane installation is up "
                                       "to date and ready to handle requests."),
             PrinterColumn("Profiles", ".status.appliedSpec.profiles",
                           description="The configuration profiles applied to the "
                                       "configuration."),
             PrinterColumn("Version", ".status.chartVersion",
                           description="The actual current version of the control plane "
                                       "installation."),
             _MAISTRA_AGE,
             PrinterColumn("Image Registry",
                           ".status.appliedSpec.runtime.defaults.container.registry",
                           priority=1,
                           description="The image registry used as the base for all "
                                       "component images."),
         )),
    Kind(group=MAISTRA, version="v1", kind="ServiceMeshMemberRoll",
         plural="servicemeshmemberrolls", singular="servicemeshmemberroll", namespaced=True,
         schema=SMMR, short_names=("smmr",), categories=("maistra-io",),
         crd_name=f"servicemeshmemberrolls.{MAISTRA}",
         printer_columns=(
             PrinterColumn("Ready", ".status.annotations.configuredMemberCount",
                           description="How many of the total number of member namespaces "
                                       "are configured"),
             PrinterColumn("Status", '.status.conditions[?(@.type=="Ready")].reason',
                           description="Whether all member namespaces have been configured "
                                       "or why that's not the case"),
             _MAISTRA_AGE,
             PrinterColumn("Members", ".status.members", priority=1,
                           description="Namespaces that are members of this Control Plane"),
         )),
    Kind(group=MAISTRA, version="v1", kind="ServiceMeshMember", plural="servicemeshmembers",
         singular="servicemeshmember", namespaced=True, schema=SMM, short_names=("smm",),
         categories=("maistra-io",), crd_name=f"servicemeshmembers.{MAISTRA}",
         printer_columns=(
             PrinterColumn("Control Plane", ".status.annotations.controlPlaneRef",
                           description="The ServiceMeshControlPlane this namespace belongs "
                                       "to"),
             PrinterColumn("Ready", '.status.conditions[?(@.type=="Ready")].status',
                           description="Whether or not namespace is configured as a member "
                                       "of the mesh."),
             _MAISTRA_AGE,
         )),
]


# Accepted and stored, not acted on yet: each says so (see Kind.not_implemented).
_NOT_IMPLEMENTED = {
    "VirtualService": "VirtualService is not implemented yet: it does not change routing",
    "DestinationRule": "DestinationRule: only trafficPolicy.tls (ISTIO_MUTUAL/DISABLE, per port) is followed by the sidecars; load balancing, connection pools, outlier detection and subsets do nothing yet",
    "ServiceEntry": "ServiceEntry is not implemented yet: it adds nothing to the mesh",
    # Enforced by the sidecars when pods have network namespaces: the platform clears these
    # then, and says why not on the shared loopback (platform._enforcement_note).
    "AuthorizationPolicy": "AuthorizationPolicy is not enforced (sidecars need pod network namespaces)",
    "PeerAuthentication": "PeerAuthentication is not enforced (sidecars need pod network namespaces)",
    "ServiceMeshControlPlane": "sidecars do not capture traffic (they need pod network namespaces)",
}
KINDS = [replace(k, not_implemented=_NOT_IMPLEMENTED[k.kind]) if k.kind in _NOT_IMPLEMENTED else k
         for k in KINDS]
