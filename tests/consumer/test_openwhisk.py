"""The OpenWhisk edge against real HTTP servers on 127.0.0.1: a redirect is never followed."""

from __future__ import annotations

import asyncio

import pytest
from aiohttp import web

from consumer.openwhisk import HttpTriggerClient
from consumer.outcomes import RetryPolicy, Verdict, decide

KEY = "23bc46b1-71f6-4ed5-8c54-816aa4f8c502:secret"


async def _serve(app: web.Application) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    return runner, f"http://127.0.0.1:{port}"


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_a_redirect_is_a_permanent_failure_and_nothing_reaches_its_target(status: int) -> None:
    async def scenario() -> None:
        elsewhere: list[bytes] = []

        async def record(request: web.Request) -> web.Response:
            elsewhere.append(await request.read())
            return web.Response(status=202, text="{}")
        target_app = web.Application()
        target_app.router.add_route("*", "/{tail:.*}", record)
        target, target_url = await _serve(target_app)

        async def redirect(request: web.Request) -> web.Response:
            return web.Response(status=status, headers={"Location": f"{target_url}{request.path}"})
        controller_app = web.Application()
        controller_app.router.add_post("/{tail:.*}", redirect)
        controller, controller_url = await _serve(controller_app)
        try:
            async with HttpTriggerClient(max_connections=4, timeout_s=10) as client:
                attempt = await client.fire(controller_url, "guest", "T", KEY, b'{"secret": "payload"}')
        finally:
            await controller.cleanup()
            await target.cleanup()
        assert attempt.status == status
        assert target_url in attempt.error and "not followed" in attempt.error
        assert elsewhere == [], "the redirect was followed"
        assert decide(attempt, 0.0, 0.0, 1, RetryPolicy())[0] is Verdict.DEAD_LETTER
    asyncio.run(scenario())
