"""Entry point: `python -m consumer [--flags]` (every flag is also an environment variable).

Builds the settings once, wires the edges (Kafka, OpenWhisk HTTP, metrics) to the roles, serves
health and metrics, and turns SIGTERM/SIGINT into a drain-and-commit shutdown.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys

from prometheus_client import CollectorRegistry

from consumer import health, logs
from consumer.firer import Firer
from consumer.kafka_io import Producer
from consumer.metrics import FirerMetrics
from consumer.openwhisk import TriggerClient
from consumer.settings import Settings, load
from messaging_lib.credentials import Sealer
from messaging_lib.errors import ConfigError

log = logging.getLogger("consumer")


async def run(settings: Settings) -> None:
    registry = CollectorRegistry()
    producer = Producer(settings.kafka)
    probes: list[health.RoleProbe] = []
    async with TriggerClient(settings.max_concurrent_fires, settings.fire_timeout_s) as client:
        firer = Firer(settings, client, producer, Sealer(settings.sealing_key_list), FirerMetrics(registry))
        probes.append(health.RoleProbe("firer", lambda: firer.ready, lambda: firer.last_poll))
        runner = await health.serve(health.app(probes, registry), settings.http_host, settings.http_port)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, firer.stop)
        try:
            await firer.run()
        finally:
            await runner.cleanup()
            producer.close()


def main(argv: list[str] | None = None) -> int:
    try:
        settings = load(argv, os.environ)
    except ConfigError as e:
        print(f"consumer: configuration error: {e}", file=sys.stderr)
        return 2
    logs.setup(settings.log_level)
    log.info("starting", extra=logs.fields(settings=repr(settings)))
    asyncio.run(run(settings))
    return 0


if __name__ == "__main__":
    sys.exit(main())
