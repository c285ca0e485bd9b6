"""Wires the serving domain into the platform: admission hooks, reconcilers and components.

platform.py calls install(platform) once the store, registry and in-process
client exist; nothing here runs before that. Serving's control plane is the
webhook (webhook.py) and one reconciler per kind: Service -> Configuration +
Route -> Revision -> Deployment, and Route -> KIngress. They share one
ConfigHolder (platform.serving_config), seeded with the defaults for the
cluster's apps domain (`skiff up --domain`), so Serving works before any
KnativeServing exists; the operator domain (operator/setup.py) registers the
KnativeServing reconciler that keeps it up to date. The KPA: a
PodAutoscaler reconciler (with the ServerlessService reconciler under it)
reads platform.revision_stats, the metric intake the data plane feeds
(autoscaler/stats.py; created here if no one has yet), and is poked through
it: its on_poke enqueues the revision's PA; the Scraper component feeds it
every second from the revision pods' queue-proxy metrics (:9090), the data
plane with the requests its activator holds. The data plane that serves
KIngresses is wired by mesh/setup.py.
"""

from __future__ import annotations

from typing import Any

from skiff.serving.autoscaler.scraper import Scraper
from skiff.serving.autoscaler.stats import RevisionStats
from skiff.serving.config import ConfigHolder
from skiff.serving.names import GROUP
from skiff.serving.reconcilers.configuration import ConfigurationReconciler
from skiff.serving.reconcilers.podautoscaler import AUTOSCALING_GROUP, PodAutoscalerReconciler
from skiff.serving.reconcilers.revision import RevisionReconciler
from skiff.serving.reconcilers.route import RouteReconciler
from skiff.serving.reconcilers.serverlessservice import ServerlessServiceReconciler
from skiff.serving.reconcilers.service import ServiceReconciler
from skiff.serving.webhook import Webhook


def install(platform: Any) -> None:
    """Register the serving domain's admission hooks, reconcilers and components on `platform`."""
    holder = ConfigHolder(platform.settings.domain)
    platform.serving_config = holder
    wh = Webhook(holder)
    adm = platform.admission
    adm.default(GROUP, "Service", wh.default_service)
    adm.default(GROUP, "Configuration", wh.default_configuration)
    adm.default(GROUP, "Revision", wh.default_revision)
    adm.default(GROUP, "Route", wh.default_route)
    adm.validate(GROUP, "Service", wh.validate_service)
    adm.validate(GROUP, "Configuration", wh.validate_configuration)
    adm.validate(GROUP, "Revision", wh.validate_revision)
    adm.validate(GROUP, "Route", wh.validate_route)
    adm.validate(AUTOSCALING_GROUP, "PodAutoscaler", wh.validate_pod_autoscaler)

    client = platform.client
    platform.manager.add(ServiceReconciler(client), workers=2)
    platform.manager.add(ConfigurationReconciler(client), workers=2)
    platform.manager.add(RevisionReconciler(client, holder), workers=2)
    platform.manager.add(RouteReconciler(client, holder), workers=2)

    platform.revision_stats = getattr(platform, "revision_stats", None) or RevisionStats()
    kpa = PodAutoscalerReconciler(client, holder, platform.revision_stats)
    controller = platform.manager.add(kpa, workers=2)
    if controller is not None:
        kpa.bind(controller.enqueue_urgent)   # pokes only: a held request waits on them
    platform.revision_stats.on_poke = kpa.poke

    def dialer(namespace: str, name: str) -> Any:
        # the node runtime exists once the platform starts its components
        node = getattr(platform, "node", None)
        return node.dialer(namespace, name) if node is not None else None

    platform.components.append(Scraper(client, platform.revision_stats, dialer))
    platform.manager.add(ServerlessServiceReconciler(client), workers=2)
