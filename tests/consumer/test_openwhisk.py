"""The OpenWhisk edge against real HTTP servers on 127.0.0.1: what is posted, how each kind of
answer becomes an ``Attempt``, and that a redirect is never followed."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from consumer.openwhisk import HttpTriggerClient
from consumer.outcomes import Attempt, RetryPolicy, Verdict, decide
from local_stack.kafka import free_port

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


pytestmark = pytest.mark.timeout(60)

API_KEY = "23bc46b1-71f6-4ed5-8c54-816aa4f8c502:" + "a" * 64
BASIC = "Basic " + base64.b64encode(API_KEY.encode()).decode()


@dataclass
class Seen:
    """What one server received."""

    requests: list[tuple[str, str, dict[str, str], bytes]] = field(default_factory=list)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


async def _serve_seen(handler: Handler, seen: Seen) -> TestServer:
    server = TestServer(_app(handler, seen), host="127.0.0.1")
    await server.start_server()
    return server


def _fire(handler: Handler, *, name: str = "t1", payload: bytes = b'{"a":1}', timeout_s: float = 10,
          other: Handler | None = None) -> tuple[Attempt, Seen, Seen]:
    """Fire once at a server answering with handler; `other` is a second server (a redirect target)."""
    seen, seen_other = Seen(), Seen()

    async def go() -> Attempt:
        server = await _serve_seen(handler, seen)
        second = await _serve_seen(other, seen_other) if other else None
        try:
            async with HttpTriggerClient(4, timeout_s) as client:
                apihost = str(server.make_url("")).rstrip("/")
                return await client.fire(apihost, "guest", name, API_KEY, payload)
        finally:
            await server.close()
            if second:
                await second.close()
    return asyncio.run(go()), seen, seen_other


async def _ok(request: web.Request) -> web.Response:
    return web.json_response({"activationId": "a"}, status=202)


def test_a_fire_posts_the_payload_with_the_key_to_the_trigger() -> None:
    attempt, seen, _ = _fire(_ok, name="my trigger/x", payload=b'{"k":"v"}')
    assert attempt == Attempt(202, "")
    [(method, path, headers, body)] = seen.requests
    assert (method, path, body) == ("POST", "/api/v1/namespaces/guest/triggers/my%20trigger%2Fx", b'{"k":"v"}')
    assert headers["Authorization"] == BASIC
    assert headers["Content-Type"] == "application/json"


def test_repeated_fires_reuse_the_cached_url_and_headers_unchanged() -> None:
    for _ in range(3):
        attempt, seen, _ = _fire(_ok, name="t2")
        assert attempt.status == 202
        assert seen.requests[0][1] == "/api/v1/namespaces/guest/triggers/t2"
        assert seen.requests[0][2]["Authorization"] == BASIC


def test_an_error_status_carries_the_start_of_the_body() -> None:
    async def refuse(request: web.Request) -> web.Response:
        return web.Response(status=404, text="x" * 600)
    attempt, _, _ = _fire(refuse)
    assert attempt == Attempt(404, "x" * 500)


def _app(handler: Handler, seen: Seen) -> web.Application:
    async def record(request: web.Request) -> web.StreamResponse:
        seen.requests.append((request.method, request.raw_path, dict(request.headers), await request.read()))
        return await handler(request)
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", record)
    return app


def test_a_slow_controller_is_a_timeout() -> None:
    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(30)
        return web.Response(status=200)
    attempt, _, _ = _fire(slow, timeout_s=0.3)
    assert attempt == Attempt(None, "timeout")


def test_a_slow_body_is_a_timeout_and_the_client_fires_on() -> None:
    """The deadline covers reading the answer too, and a fire timed out leaves the client usable."""
    async def dribble(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(status=200, headers={"Content-Length": "10"})
        await response.prepare(request)
        await response.write(b"{")
        await asyncio.sleep(30)
        return response

    async def go() -> tuple[Attempt, Attempt]:
        slow = TestServer(_app(dribble, Seen()), host="127.0.0.1")
        fast = TestServer(_app(_ok, Seen()), host="127.0.0.1")
        await slow.start_server()
        await fast.start_server()
        try:
            async with HttpTriggerClient(4, 0.3) as client:
                timed_out = await client.fire(str(slow.make_url("")).rstrip("/"), "guest", "t", API_KEY, b"{}")
                after = await client.fire(str(fast.make_url("")).rstrip("/"), "guest", "t", API_KEY, b"{}")
                return timed_out, after
        finally:
            await slow.close()
            await fast.close()
    assert asyncio.run(go()) == (Attempt(None, "timeout"), Attempt(202, ""))


def test_a_fire_cancelled_by_its_caller_is_cancelled_not_a_timeout() -> None:
    """Only the client's own deadline becomes a timeout: a shutdown's cancel goes through."""
    started = asyncio.Event()

    async def slow(request: web.Request) -> web.Response:
        started.set()
        await asyncio.sleep(30)
        return web.Response(status=200)

    async def go() -> bool:
        server = TestServer(_app(slow, Seen()), host="127.0.0.1")
        await server.start_server()
        try:
            async with HttpTriggerClient(4, 0.5) as client:
                fire = asyncio.ensure_future(client.fire(str(server.make_url("")).rstrip("/"), "guest", "t",
                                                         API_KEY, b"{}"))
                await asyncio.wait_for(started.wait(), 10)
                fire.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await fire
                return fire.cancelled()
        finally:
            await server.close()
    assert asyncio.run(go())


def test_no_listener_is_a_connection_error() -> None:
    async def go() -> Attempt:
        async with HttpTriggerClient(4, 10) as client:
            return await client.fire(f"http://127.0.0.1:{free_port()}", "guest", "t", API_KEY, b"{}")
    attempt = asyncio.run(go())
    assert attempt.status is None
    assert attempt.error.startswith("connection error: ")
