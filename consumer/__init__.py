"""The consumer service: the firer and router roles, in one process on one asyncio loop.

Entry point and wiring: ``__main__`` (roles, signals), ``settings``, ``health``, ``logs``,
``metrics``. The loops: ``firer`` (trigger messages -> trigger fires) and ``router``
(subscribed topics -> batched envelopes), on the shared machinery of ``toolkit``. Pure logic the
loops use: ``outcomes`` (fire results -> decisions), ``pacing`` (per-namespace 429 pacing),
``offsets`` (what may be committed), ``dead_letters`` (dead-letter records), ``batching``,
``positions`` (catch-up state in commit metadata), ``subscriptions`` (the subscription index and
status records), ``table`` (a compacted topic read as a table). Edges: ``kafka_edge`` (every
kafka-python client) and ``openwhisk`` (the trigger client). Operator tool: ``replay``.
"""
