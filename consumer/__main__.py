"""Entry point: `python -m consumer [--flags]` (every flag is also an environment variable).

Builds the settings once, wires the edges (Kafka, OpenWhisk HTTP, metrics) to the roles chosen by
ROLES (firer, router, or both in one process), serves health and metrics (/readyz reports each
role), and turns SIGTERM/SIGINT into a drain-and-commit shutdown of every role. If one role
fails, the others are stopped too, so the process exits and is restarted whole.

With ``WORKERS=N`` (N > 1) this process only supervises N such processes, so one container uses N
cores (consumer/workers.py).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack

from aiohttp import web
from prometheus_client import CollectorRegistry

from consumer import health, logs, table_api, workers
from consumer.firer import Firer
from consumer.kafka_rd import KafkaLog, Producer
from consumer.metrics import FirerMetrics, RouterMetrics
from consumer.no_rule import NoRuleReporter
from consumer.openwhisk import HttpTriggerClient
from consumer.router import Router
from consumer.settings import Settings, load
from consumer.subscriptions import StatusWriter
from messaging_lib.credentials import Sealer, parse_legacy_cutoff
from messaging_lib.errors import ConfigError

log = logging.getLogger("consumer")
GC_THRESHOLDS = (20_000, 10, 10)  # CPython's default: (700, 10, 10)


async def run(settings: Settings) -> None:
    registry = CollectorRegistry()
    producer = Producer(settings.kafka)
    probes: list[health.RoleProbe] = []
    routes: list[web.RouteDef] = []  # the routers' read API (consumer.table_api), when this process routes
    loops: list[tuple[Callable[[], Awaitable[None]], Callable[[], None]]] = []
    legacy_until = parse_legacy_cutoff(settings.legacy_credentials_until)

    def sealer(subscription_credentials_fire: bool = True) -> Sealer:
        return Sealer(settings.sealing_key_list, legacy_until=legacy_until,
                      subscription_credentials_fire=subscription_credentials_fire)

    async with AsyncExitStack() as stack:
        if "firer" in settings.role_set:
            client = await stack.enter_async_context(
                HttpTriggerClient(settings.max_concurrent_fires, settings.fire_timeout_s))

            async def send_status(key: bytes, value: bytes) -> object:
                return await producer.send(settings.subscriptions_topic, value, key=key)
            statuses, firer_metrics = StatusWriter(send_status), FirerMetrics(registry)
            firer = Firer(settings, client, producer, sealer(subscription_credentials_fire=False),  # router re-seals
                          firer_metrics, on_refused=statuses.on_refused,
                          no_rule=NoRuleReporter(firer_metrics.fires_without_rule, note=statuses.on_no_rule),
                          park_reader=Firer.park_reader_of(settings))
            probes.append(health.RoleProbe("firer", lambda: firer.ready, lambda: firer.last_poll))
            loops.append((firer.run, firer.stop))
        if "router" in settings.role_set:
            subscriptions_log = KafkaLog(settings.kafka, settings.subscriptions_topic, settings.router_group)
            router = Router(settings, producer, subscriptions_log, RouterMetrics(registry), sealer=sealer())
            probes.append(health.RoleProbe("router", lambda: router.ready, lambda: router.last_poll))
            loops.append((router.run, router.stop))
            routes += table_api.routes(router.index, lambda: router.ready, settings.sealing_keys, registry)
        runner = await health.serve(health.app(probes, registry, routes), settings.http_host, settings.http_port)

        def stop_all() -> None:
            for _, stop in loops:
                stop()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop_all)
        try:
            results = await asyncio.gather(*(_until_done(run_role(), stop_all) for run_role, _ in loops),
                                           return_exceptions=True)  # every role drains before the exit
        finally:
            await runner.cleanup()
            producer.close()
        for result in results:
            if isinstance(result, BaseException):
                raise result


async def _until_done(role: Awaitable[None], stop_all: Callable[[], None]) -> None:
    """Run one role; when it ends for any reason, the others stop as well."""
    try:
        await role
    finally:
        stop_all()


def tune_gc() -> None:
    """Collect garbage less often than CPython's default, for the firer's CPU per fire (issue 15).

    Every fire allocates hundreds of short-lived objects (the aiohttp request and response, the
    parsed record), so the default first-generation threshold (700 allocations) runs a collection
    every few fires, and the caches of opened credentials keep promoting survivors into full
    collections, each of which scans every object of the process. So: the objects made at start
    (modules, classes, settings) are frozen out of all collections, and the thresholds are raised.
    Measured (a firer draining 10,000 messages at 20 ms latency, alternated with the defaults in
    one run): 5-15 % less CPU per fire. At most 20,000 young objects wait for a collection.
    """
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def main(argv: list[str] | None = None) -> int:
    try:
        count, argv = workers.workers_option(sys.argv[1:] if argv is None else argv, os.environ)
        settings = load(argv, os.environ)
    except ConfigError as e:
        print(f"consumer: configuration error: {e}", file=sys.stderr)
        return 2
    logs.setup(settings.log_level)
    if count > 1:
        log.info("starting workers", extra=logs.fields(workers=count))
        commands = workers.worker_commands(argv, os.environ, count, settings.http_port,
                                           settings.consumer_instance_id)
        return workers.Supervisor(commands, settings.shutdown_timeout_s).run()
    log.info("starting", extra=logs.fields(settings=repr(settings)))
    tune_gc()
    with event_loop(settings.event_loop) as runner:
        runner.run(run(settings))
    return 0


def event_loop(wanted: str) -> asyncio.Runner:
    """A runner on uvloop when wanted and installed, else on asyncio's own loop.

    uvloop runs the loop, its callbacks and its transports in C, where asyncio's own loop runs them
    in Python: the firer spent a seventh less CPU per fire on it (bench/firer_cost.py, alternated:
    1.49-1.53 against 1.75-1.79 CPU s per 10,000 fires). The code uses only asyncio's API: the
    unit tests run the roles on asyncio's loop, the end-to-end tests run the service on uvloop.
    """
    if wanted == "uvloop":
        try:
            import uvloop
        except ImportError:
            log.warning("uvloop is not installed: running on asyncio's own loop (more CPU per fire)")
        else:
            return asyncio.Runner(loop_factory=uvloop.new_event_loop)
    return asyncio.Runner()


if __name__ == "__main__":
    sys.exit(main())
