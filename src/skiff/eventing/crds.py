"""Knative Eventing's resource kinds, declared as data.

eventing.knative.dev: Broker, Trigger (v1), KafkaSink (v1alpha1);
messaging.knative.dev: Channel, InMemoryChannel, Subscription (v1),
KafkaChannel (v1beta1); sources.knative.dev: PingSource, ApiServerSource,
SinkBinding, ContainerSource (v1), KafkaSource (v1beta1). Names, short
names, categories and printer columns are those of the upstream CRDs of
Knative Eventing 1.10 (knative/eventing config/core/resources,
config/channels/in-memory-channel) and eventing-kafka-broker
(control-plane/config/eventing-kafka-broker), which OpenShift Serverless
1.31 ships. Note the upstream printer columns mix `'Ready'` and `"Ready"`
quoting; both are kept as written there.

The duck types every kind shares are declared once: KREFERENCE,
DESTINATION (ref and/or uri), DELIVERY (retry, backoff, dead-letter sink,
timeout), SUBSCRIBER_SPEC (a channel's subscriber list),
CLOUD_EVENT_OVERRIDES, SOURCE_STATUS.

Neighbours: eventing/ reconcilers (broker, trigger, channel, subscription,
sources, delivery) read these objects; core/schema_pod.py
(POD_TEMPLATE_SPEC for ContainerSource); core/kinds.py (Kind, crd_for).
Pure data.
"""

from __future__ import annotations

from dataclasses import replace

from skiff.core.kinds import Kind, PrinterColumn
from skiff.core.schema import (
    ANY,
    BOOL,
    CONDITION,
    INT,
    LABEL_SELECTOR,
    STR,
    STR_LIST,
    STR_MAP,
    Schema,
    arr,
    enum,
    obj,
    open_obj,
    resource,
)
from skiff.core.schema_pod import POD_TEMPLATE_SPEC, int_range

__all__ = ["DELIVERY", "DESTINATION", "KINDS", "KREFERENCE", "SUBSCRIBER_SPEC"]

EVENTING = "eventing.knative.dev"
MESSAGING = "messaging.knative.dev"
SOURCES = "sources.knative.dev"

# --- duck types ---------------------------------------------------------------------

KREFERENCE = obj({"apiVersion": STR, "kind": STR, "name": STR, "namespace": STR,
                  "group": STR, "address": STR})

DESTINATION = obj({
    "ref": obj({**KREFERENCE["properties"]}, required=("kind", "name")),
    "uri": STR,
    "CACerts": STR,
    "audience": STR,
})

DELIVERY = obj({
    "deadLetterSink": DESTINATION,
    "retry": int_range(0),
    "backoffPolicy": enum("linear", "exponential"),
    "backoffDelay": STR,     # ISO-8601 duration, e.g. PT0.2S
    "timeout": STR,          # ISO-8601 duration (delivery-timeout feature)
    "retryAfterMax": STR,    # ISO-8601 duration (delivery-retryafter feature)
})

SUBSCRIBER_SPEC = obj({
    "uid": STR, "generation": INT, "name": STR,
    "subscriberUri": STR, "subscriberCACerts": STR, "subscriberAudience": STR,
    "replyUri": STR, "replyCACerts": STR, "replyAudience": STR,
    "delivery": DELIVERY,
})

CLOUD_EVENT_OVERRIDES = obj({"extensions": STR_MAP})

ADDRESS = open_obj({"url": STR, "name": STR, "CACerts": STR, "audience": STR})


def _status(extra: dict[str, Schema] | None = None) -> Schema:
    return open_obj({
        "observedGeneration": INT, "conditions": arr(CONDITION), "annotations": STR_MAP,
        **(extra or {}),
    })


ADDRESSABLE_STATUS = _status({"address": ADDRESS, "addresses": arr(ADDRESS),
                              "deadLetterSinkUri": STR, "deadLetterSinkCACerts": STR})
CHANNEL_STATUS = _status({
    "address": ADDRESS, "addresses": arr(ADDRESS), "deadLetterSinkUri": STR,
    "deadLetterChannel": KREFERENCE,
    "subscribers": arr(open_obj({"uid": STR, "observedGeneration": INT, "ready": STR,
                                 "message": STR})),
    "channel": KREFERENCE,   # Channel: the backing channel it created
})
SOURCE_STATUS = _status({
    "sinkUri": STR, "sinkCACerts": STR,
    "ceAttributes": arr(obj({"type": STR, "source": STR})),
})

# --- eventing.knative.dev --------------------------------------------------------------

BROKER = resource(obj({"config": KREFERENCE, "delivery": DELIVERY}),
                  status=ADDRESSABLE_STATUS)

# The experimental new trigger filters (Knative 1.10 feature new-trigger-filters):
# a dialect per key; all/any/not nest, kept open one level down.
_FILTER_LEAVES: dict[str, Schema] = {
    "exact": STR_MAP, "prefix": STR_MAP, "suffix": STR_MAP, "cesql": STR,
}
_NESTED_FILTER = obj({**_FILTER_LEAVES, "all": arr(ANY), "any": arr(ANY), "not": ANY})
SUBSCRIPTIONS_API_FILTER = obj({**_FILTER_LEAVES, "all": arr(_NESTED_FILTER),
                                "any": arr(_NESTED_FILTER), "not": _NESTED_FILTER})

TRIGGER = resource(obj({
    "broker": STR,
    "filter": obj({"attributes": STR_MAP}),
    "filters": arr(SUBSCRIPTIONS_API_FILTER),
    "subscriber": DESTINATION,
    "delivery": DELIVERY,
}, required=("broker", "subscriber")), status=_status({
    "subscriberUri": STR, "subscriberCACerts": STR, "deadLetterSinkUri": STR,
}))

KAFKA_SINK = resource(obj({
    "topic": STR,
    "bootstrapServers": STR_LIST,
    "contentMode": enum("binary", "structured"),
    "numPartitions": INT,
    "replicationFactor": INT,
    "auth": obj({"secret": obj({"ref": obj({"name": STR}, required=("name",))})}),
}, required=("topic", "bootstrapServers")), status=ADDRESSABLE_STATUS)

# --- messaging.knative.dev --------------------------------------------------------------

CHANNELABLE: dict[str, Schema] = {"subscribers": arr(SUBSCRIBER_SPEC), "delivery": DELIVERY}

CHANNEL = resource(obj({
    # The backing channel's kind and its spec, e.g. InMemoryChannel or KafkaChannel.
    "channelTemplate": obj({"apiVersion": STR, "kind": STR, "spec": ANY},
                           required=("apiVersion", "kind")),
    **CHANNELABLE,
}), status=CHANNEL_STATUS)

IN_MEMORY_CHANNEL = resource(obj(CHANNELABLE), status=CHANNEL_STATUS)

KAFKA_CHANNEL = resource(obj({
    "numPartitions": int_range(1),
    "replicationFactor": int_range(1, 32767),
    "retentionDuration": STR,   # ISO-8601 duration, default PT168H
    **CHANNELABLE,
}), status=CHANNEL_STATUS)

SUBSCRIPTION = resource(obj({
    "channel": obj({**KREFERENCE["properties"]}, required=("apiVersion", "kind", "name")),
    "subscriber": DESTINATION,
    "reply": DESTINATION,
    "delivery": DELIVERY,
}, required=("channel",)), status=_status({
    "physicalSubscription": open_obj({"subscriberUri": STR, "replyUri": STR,
                                      "deadLetterSinkUri": STR}),
}))

# --- sources.knative.dev ----------------------------------------------------------------

SOURCE_SPEC: dict[str, Schema] = {"sink": DESTINATION, "ceOverrides": CLOUD_EVENT_OVERRIDES}

PING_SOURCE = resource(obj({
    "schedule": STR,        # cron, default "* * * * *"
    "timezone": STR,        # IANA name, e.g. Asia/Seoul
    "contentType": STR,
    "data": STR,
    "dataBase64": STR,
    **SOURCE_SPEC,
}), status=SOURCE_STATUS)

API_SERVER_SOURCE = resource(obj({
    "resources": arr(obj({"apiVersion": STR, "kind": STR, "selector": LABEL_SELECTOR},
                         required=("apiVersion", "kind"))),
    "owner": obj({"apiVersion": STR, "kind": STR}),
    "mode": enum("Reference", "Resource"),
    "serviceAccountName": STR,
    "namespaceSelector": LABEL_SELECTOR,
    **SOURCE_SPEC,
}, required=("resources",)), status=_status({
    "sinkUri": STR, "sinkCACerts": STR, "namespaces": STR_LIST,
    "ceAttributes": arr(obj({"type": STR, "source": STR})),
}))

SINK_BINDING = resource(obj({
    "subject": obj({"apiVersion": STR, "kind": STR, "namespace": STR, "name": STR,
                    "selector": LABEL_SELECTOR}, required=("apiVersion", "kind")),
    **SOURCE_SPEC,
}, required=("subject",)), status=SOURCE_STATUS)

CONTAINER_SOURCE = resource(obj({"template": POD_TEMPLATE_SPEC, **SOURCE_SPEC},
                                required=("template",)), status=SOURCE_STATUS)

_SECRET_VALUE = obj({"secretKeyRef": obj({"name": STR, "key": STR, "optional": BOOL},
                                         required=("key",))})

KAFKA_SOURCE = resource(obj({
    "bootstrapServers": STR_LIST,
    "topics": STR_LIST,
    "consumerGroup": STR,
    "consumers": int_range(0),
    "initialOffset": enum("earliest", "latest"),
    "ordering": enum("ordered", "unordered"),
    "net": obj({
        "sasl": obj({"enable": BOOL, "user": _SECRET_VALUE, "password": _SECRET_VALUE,
                     "type": _SECRET_VALUE}),
        "tls": obj({"enable": BOOL, "cert": _SECRET_VALUE, "key": _SECRET_VALUE,
                    "caCert": _SECRET_VALUE}),
    }),
    "delivery": DELIVERY,
    **SOURCE_SPEC,
}, required=("bootstrapServers", "topics")), status=_status({
    "sinkUri": STR, "consumers": INT, "selector": STR, "placements": arr(open_obj()),
    "ceAttributes": arr(obj({"type": STR, "source": STR})),
}))

# --- the kinds ------------------------------------------------------------------------------

_AGE = PrinterColumn("Age", ".metadata.creationTimestamp", type="date")


def _ready(quote: str = '"') -> tuple[PrinterColumn, PrinterColumn]:
    cond = f".status.conditions[?(@.type=={quote}Ready{quote})]"
    return (PrinterColumn("Ready", cond + ".status"), PrinterColumn("Reason", cond + ".reason"))


_URL_AGE_READY = (PrinterColumn("URL", ".status.address.url"), _AGE, *_ready())
_SINK_AGE_READY = (PrinterColumn("Sink", ".status.sinkUri"), _AGE, *_ready())
_EVENTING_CATEGORIES = ("all", "knative", "eventing")
_CHANNEL_CATEGORIES = ("all", "knative", "messaging", "channel")
_SOURCE_CATEGORIES = ("all", "knative", "sources")

KINDS: list[Kind] = [
    Kind(group=EVENTING, version="v1", kind="Broker", plural="brokers", singular="broker",
         namespaced=True, schema=BROKER, categories=_EVENTING_CATEGORIES,
         crd_name=f"brokers.{EVENTING}", printer_columns=_URL_AGE_READY),
    Kind(group=EVENTING, version="v1", kind="Trigger", plural="triggers", singular="trigger",
         namespaced=True, schema=TRIGGER, categories=_EVENTING_CATEGORIES,
         crd_name=f"triggers.{EVENTING}",
         printer_columns=(
             PrinterColumn("Broker", ".spec.broker"),
             PrinterColumn("Subscriber_URI", ".status.subscriberUri"),
             _AGE, *_ready(),
         )),
    Kind(group=EVENTING, version="v1alpha1", kind="KafkaSink", plural="kafkasinks",
         singular="kafkasink", namespaced=True, schema=KAFKA_SINK,
         categories=_EVENTING_CATEGORIES, crd_name=f"kafkasinks.{EVENTING}",
         printer_columns=_URL_AGE_READY),
    Kind(group=MESSAGING, version="v1", kind="Channel", plural="channels", singular="channel",
         namespaced=True, schema=CHANNEL, short_names=("ch",), categories=_CHANNEL_CATEGORIES,
         crd_name=f"channels.{MESSAGING}", printer_columns=_URL_AGE_READY),
    Kind(group=MESSAGING, version="v1", kind="InMemoryChannel", plural="inmemorychannels",
         singular="inmemorychannel", namespaced=True, schema=IN_MEMORY_CHANNEL,
         short_names=("imc",), categories=_CHANNEL_CATEGORIES,
         crd_name=f"inmemorychannels.{MESSAGING}", printer_columns=_URL_AGE_READY),
    Kind(group=MESSAGING, version="v1beta1", kind="KafkaChannel", plural="kafkachannels",
         singular="kafkachannel", namespaced=True, schema=KAFKA_CHANNEL, short_names=("kc",),
         categories=_CHANNEL_CATEGORIES, crd_name=f"kafkachannels.{MESSAGING}",
         printer_columns=(*_ready(), PrinterColumn("URL", ".status.address.url"), _AGE)),
    Kind(group=MESSAGING, version="v1", kind="Subscription", plural="subscriptions",
         singular="subscription", namespaced=True, schema=SUBSCRIPTION, short_names=("sub",),
         categories=_EVENTING_CATEGORIES, crd_name=f"subscriptions.{MESSAGING}",
         printer_columns=(_AGE, *_ready())),
    Kind(group=SOURCES, version="v1", versions=("v1", "v1beta2"), kind="PingSource",
         plural="pingsources", singular="pingsource", namespaced=True, schema=PING_SOURCE,
         categories=_SOURCE_CATEGORIES, crd_name=f"pingsources.{SOURCES}",
         printer_columns=(
             PrinterColumn("Sink", ".status.sinkUri"),
             PrinterColumn("Schedule", ".spec.schedule"),
             _AGE, *_ready("'"),
         )),
    Kind(group=SOURCES, version="v1", kind="ApiServerSource", plural="apiserversources",
         singular="apiserversource", namespaced=True, schema=API_SERVER_SOURCE,
         categories=_SOURCE_CATEGORIES, crd_name=f"apiserversources.{SOURCES}",
         printer_columns=_SINK_AGE_READY),
    Kind(group=SOURCES, version="v1", kind="SinkBinding", plural="sinkbindings",
         singular="sinkbinding", namespaced=True, schema=SINK_BINDING,
         categories=(*_SOURCE_CATEGORIES, "bindings"), crd_name=f"sinkbindings.{SOURCES}",
         printer_columns=_SINK_AGE_READY),
    Kind(group=SOURCES, version="v1", kind="ContainerSource", plural="containersources",
         singular="containersource", namespaced=True, schema=CONTAINER_SOURCE,
         categories=_SOURCE_CATEGORIES, crd_name=f"containersources.{SOURCES}",
         printer_columns=(
             PrinterColumn("Sink", ".status.sinkUri"), _AGE,
             PrinterColumn("Ready", '.status.conditions[?(@.type=="Ready")].status'),
             PrinterColumn("Reason", ".status.conditions[?(@.type=='Ready')].reason"),
         )),
    Kind(group=SOURCES, version="v1beta1", kind="KafkaSource", plural="kafkasources",
         singular="kafkasource", namespaced=True, schema=KAFKA_SOURCE,
         categories=("all", "knative", "eventing", "sources"),
         crd_name=f"kafkasources.{SOURCES}",
         printer_columns=(
             PrinterColumn("Topics", ".spec.topics"),
             PrinterColumn("BootstrapServers", ".spec.bootstrapServers"),
             *_ready(), _AGE,
         )),
]


# Accepted and stored, not acted on yet: each says so (see Kind.not_implemented).
_NOT_IMPLEMENTED = {
    "Broker": "Knative Eventing is not implemented yet: no events are delivered",
    "Trigger": "Knative Eventing is not implemented yet: no events are delivered",
    "Channel": "Knative Eventing is not implemented yet: no events are delivered",
    "InMemoryChannel": "Knative Eventing is not implemented yet: no events are delivered",
    "Subscription": "Knative Eventing is not implemented yet: no events are delivered",
    "PingSource": "Knative Eventing is not implemented yet: no events are delivered",
    "ApiServerSource": "Knative Eventing is not implemented yet: no events are delivered",
    "SinkBinding": "Knative Eventing is not implemented yet: no events are delivered",
    "ContainerSource": "Knative Eventing is not implemented yet: no events are delivered",
    "KafkaSink": "Knative Kafka is not implemented yet: no Kafka broker, channel, source or sink runs",
    "KafkaChannel": "Knative Kafka is not implemented yet: no Kafka broker, channel, source or sink runs",
    "KafkaSource": "Knative Kafka is not implemented yet: no Kafka broker, channel, source or sink runs",
}
KINDS = [replace(k, not_implemented=_NOT_IMPLEMENTED[k.kind]) if k.kind in _NOT_IMPLEMENTED else k
         for k in KINDS]
