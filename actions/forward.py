"""The public actions of the shared `messaging` package that need the service: produce, token, kafkaFeed.

Parameters of a shared package are readable by every namespace, so the public actions hold no
secrets: each forwards its parameters, with the caller's own API key, to the private web action
of the same name in `messagingWeb`, which holds the secrets and checks the key before acting
(DESIGN.md section 2), presenting the web actions' `require-whisk-auth` secret (the bound
`messaging_web_auth`) so that the controller refuses anyone who calls them directly without it.
One module serves every public action: the action's own name
(`__OW_ACTION_NAME` = /owner/messaging/produce) says which web action to call and in which
namespace it lives. For kafkaFeed, OpenWhisk itself invokes the action with each lifecycle event
(CREATE, READ, UPDATE, DELETE; PAUSE and UNPAUSE when invoked directly), and the web action's
answer is the event's result. (kafkaProduce needs no service: actions/kafka_produce.py.) Runs in
the python:3.11 runtime (requests, stdlib).
"""

from __future__ import annotations

import os

import requests

from actions.common import time_left_s

WEB_PACKAGE = "messagingWeb"
# This package's own settings (bound on messaging): used here, never forwarded.
OWN_SETTINGS = ("messaging_web_package", "messaging_web_auth")
WEB_AUTH_HEADER = "X-Require-Whisk-Auth"  # the controller checks it against messagingWeb's require-whisk-auth
_session = requests.Session()  # kept across warm activations: pooled connections


def main(params: dict) -> dict:
    api_key = os.environ.get("__OW_API_KEY")
    if not api_key:
        return {"error": "this action needs the caller's API key: deploy it with the annotation provide-api-key true"}
    try:
        url = web_action_url(os.environ["__OW_API_HOST"], os.environ["__OW_ACTION_NAME"],
                             params.get("messaging_web_package") or WEB_PACKAGE)
    except (KeyError, ValueError) as e:
        return {"error": f"cannot locate the web action: {e}"}
    body = {k: v for k, v in params.items() if not k.startswith("__") and k not in OWN_SETTINGS}
    body.update(authKey=api_key, callerNamespace=os.environ.get("__OW_NAMESPACE", ""))
    secret = params.get("messaging_web_auth")
    headers = {WEB_AUTH_HEADER: secret} if isinstance(secret, str) and secret else {}
    try:
        response = _session.post(url, json=body, headers=headers, timeout=time_left_s())
    except requests.RequestException as e:
        return {"error": f"the messaging service is unreachable: {type(e).__name__}"}
    try:
        result = response.json()
    except ValueError:
        return {"error": f"the messaging service answered {response.status_code} without JSON"}
    if not isinstance(result, dict):
        return {"error": f"the messaging service answered {response.status_code} with unexpected JSON"}
    if response.status_code >= 300 and "error" not in result:
        return {"error": f"the messaging service answered {response.status_code}"}
    return result


def web_action_url(apihost: str, action_name: str, web_package: str) -> str:
    """/owner/messaging/produce -> {apihost}/api/v1/web/owner/messagingWeb/produce.http"""
    parts = action_name.strip("/").split("/")
    if len(parts) != 3:
        raise ValueError(f"expected /namespace/package/action, got {action_name!r}")
    owner, _, action = parts
    return f"{apihost.rstrip('/')}/api/v1/web/{owner}/{web_package}/{action}.http"
