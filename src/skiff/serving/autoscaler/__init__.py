"""Knative Serving 1.10's autoscaling, as pure functions of data with `now` passed in.

The KPA's pieces, each under its upstream name:

- config.py: the config-autoscaler ConfigMap (AutoscalerConfig, parse_config)
  and a revision's resolved scaling spec (RevisionScaling, resolve), which is
  what upstream's MakeDecider and MakeMetric compute from a PodAutoscaler.
- validate.py: the webhook's autoscaling.ValidateAnnotations, message for message.
- metrics.py: aggregation.TimedFloat64Buckets and WeightedFloat64Buckets, the
  1-second buckets behind the stable and panic window averages, and the
  collector's per-revision collection of them.
- decider.py: scaling.autoscaler's Scale() (panic mode, rate limits,
  scale-down-delay, activation-scale, excess burst capacity) and the KPA
  reconciler's scale bounds, scale-to-zero, SKS mode and activator count.
- breaker.py: queue-proxy's Breaker (containerConcurrency slots plus a queue
  of 10 x cc) and the activator throttler's capacity arithmetic.
- durations.py: Go's time.ParseDuration and Duration.String, because the
  ConfigMap, the annotations and upstream's messages all speak Go durations.

Nothing here opens a socket, starts a task or reads a clock: the runner that
ticks every 2 s, the scraper and the data-plane shells (activator,
queue-proxy) live elsewhere in serving/ and call in with `now`.
"""
