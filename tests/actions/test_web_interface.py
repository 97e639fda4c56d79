"""The web actions' strict interface, their bounded client caches, and token lifetimes (issue 11).

Pure parts only: the actions' Kafka and OpenWhisk edges are exercised in tests/security."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import pytest

from actions import forward
from actions.common import ActionError
from actions.web import feed, produce, support, token
from messaging_lib.credentials import DEFAULT_TOKEN_MAX_TTL_S, DEFAULT_TOKEN_TTL_S

KEY = "23bc46b1-71f6-4ed5-8c54-816aa4f8c502:123zO3xZCLrMN6v2BKK1dXYFpXlPkccOFqm12CdAsMgRU4VrNZ9lyGVCGuMDGIwP"
PLATFORM = {"__ow_method": "post", "__ow_headers": {}, "__ow_path": ""}


@pytest.mark.parametrize("handler, name, extra, text", [
    (produce.produce, "produce", {"kafka_client_id": "x"},
     "unknown parameters: kafka_client_id (produce accepts id, payload, trigger)"),
    (token.token, "token", {"__ow_api_key": "x", "__OW_NAMESPACE": "bob"},
     "unknown parameters: __OW_NAMESPACE, __ow_api_key (token accepts trigger, ttl)"),
    (feed.feed, "kafkaFeed", {"kafka_ssl_cafile": "/etc/passwd", "messaging_web_package": "x"},
     "unknown parameters: kafka_ssl_cafile, messaging_web_package, trigger (kafkaFeed accepts batchWindowMs, brokers, "
     "isBinaryKey, isBinaryValue, isJSONData, lifecycleEvent, maxBatchBytes, maxBatchMessages, startFrom, topic, "
     "triggerName)"),
])
def test_a_parameter_outside_the_interface_is_refused_with_a_400_naming_it(handler, name, extra, text) -> None:
    params = {"authKey": KEY, "callerNamespace": "alice", "trigger": "T", **PLATFORM, **extra}
    answer = support.respond(handler, params)
    assert answer == {"statusCode": 400, "body": {"error": text}}, name


def test_bound_settings_forwarded_values_and_the_platforms_parameters_are_accepted() -> None:
    params = {name: "" for name in support.SETTINGS} | {"authKey": KEY, "callerNamespace": "a"} | PLATFORM
    support.check_interface({**params, "trigger": "T", "payload": {}, "id": "1"}, produce.INTERFACE, "produce")


def test_the_forwarder_never_forwards_its_own_settings() -> None:
    assert set(forward.OWN_SETTINGS) == {"messaging_web_package", "messaging_web_auth"}
    assert not set(forward.OWN_SETTINGS) & support.SETTINGS


@dataclass
class Client:
    closed: bool = False

    def close(self, timeout: float | None = None) -> None:
        self.closed = True


def test_the_client_cache_is_bounded_and_closes_the_least_recently_used() -> None:
    cache: OrderedDict[int, Client] = OrderedDict()
    made = [support.cached(cache, n, Client, support.close_client) for n in range(support.MAX_CACHED)]
    assert support.cached(cache, 0, Client, support.close_client) is made[0]  # 0 is now the most recent
    support.cached(cache, 99, Client, support.close_client)
    assert len(cache) == support.MAX_CACHED == 4
    assert [c.closed for c in made] == [False, True, False, False]
    assert list(cache) == [2, 3, 0, 99]


@pytest.mark.parametrize("params, expected", [
    ({}, DEFAULT_TOKEN_TTL_S),
    ({"ttl": 60}, 60),
    ({"ttl": "3600"}, 3600),
    ({"ttl": DEFAULT_TOKEN_MAX_TTL_S}, DEFAULT_TOKEN_MAX_TTL_S),
    ({"token_max_ttl_s": "600"}, 600),
    ({"token_max_ttl_s": "", "ttl": ""}, DEFAULT_TOKEN_TTL_S),
])
def test_token_lifetimes(params: dict, expected: int) -> None:
    assert token.lifetime(params) == expected


@pytest.mark.parametrize("params, most", [
    ({"ttl": 0}, DEFAULT_TOKEN_MAX_TTL_S), ({"ttl": -1}, DEFAULT_TOKEN_MAX_TTL_S),
    ({"ttl": 1.5}, DEFAULT_TOKEN_MAX_TTL_S), ({"ttl": True}, DEFAULT_TOKEN_MAX_TTL_S),
    ({"ttl": DEFAULT_TOKEN_MAX_TTL_S + 1}, DEFAULT_TOKEN_MAX_TTL_S), ({"ttl": 601, "token_max_ttl_s": 600}, 600),
])
def test_a_token_lifetime_beyond_the_operators_maximum_is_refused(params: dict, most: int) -> None:
    with pytest.raises(ActionError) as caught:
        token.lifetime(params)
    assert str(caught.value) == f"parameter 'ttl' must be a whole number of seconds from 1 to {most}"
