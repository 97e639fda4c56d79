"""The OpenWhisk API as the deploy steps use it: is this host OpenWhisk and does it take the key,
which sealing keys a deployed messagingWeb holds, and waiting for an activation (the demo).

The key comes from OW_AUTH (deploy.sh exports it; never on a command line) and is parsed once, into
an OpenWhiskApi whose repr leaves it out. Every failure is one DeployError sentence.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import requests

from deploy.errors import DeployError, until

WEB_PACKAGE = "messagingWeb"
HTTP_TIMEOUT_S = 15
KEY_HINT = "--auth UUID:KEY, set WHISK_AUTH, or put AUTH=... in ~/.wskprops"


def parse_key(key: str) -> tuple[str, str]:
    """(uuid, secret) of an OpenWhisk key 'uuid:secret'. The key itself never goes into a message."""
    if not key:
        raise DeployError(f"no OpenWhisk key: pass {KEY_HINT}")
    if ":" not in key:
        raise DeployError("the OpenWhisk key must be UUID:KEY, a uuid and its secret joined by a colon (as "
                          "`wsk property get --auth` shows it): check --auth (or WHISK_AUTH, or AUTH in ~/.wskprops)")
    user, _, password = key.partition(":")
    return user, password


@dataclass(frozen=True)
class OpenWhiskApi:
    """One OpenWhisk host and the key to talk to it with."""

    apihost: str
    key: tuple[str, str] = field(repr=False)
    verify: bool = True  # False: --insecure (a self-signed certificate)

    @classmethod
    def from_env(cls, apihost: str, verify: bool, environ: Mapping[str, str]) -> OpenWhiskApi:
        """The host of --apihost (trailing slash dropped) with the key of OW_AUTH; a missing or
        malformed key fails here, before any request."""
        return cls(apihost.rstrip("/"), parse_key(environ.get("OW_AUTH", "")), verify)

    def get(self, path: str, what: str, auth: bool = True) -> requests.Response:
        """GET apihost + path; the ways it can fail to answer become one sentence about `what`."""
        try:
            return requests.get(f"{self.apihost}{path}", auth=self.key if auth else None, timeout=HTTP_TIMEOUT_S,
                                verify=self.verify)
        except requests.exceptions.SSLError as e:
            raise DeployError(f"TLS failed talking to {what}: {e}. Use --insecure for a self-signed certificate"
                              ) from None
        except requests.RequestException as e:
            raise DeployError(f"{what} is unreachable ({type(e).__name__}): check --apihost (or APIHOST in "
                              "~/.wskprops) and that OpenWhisk is running") from None


def _is_openwhisk(response: requests.Response) -> bool:
    """Whether GET /api/v1 answered as OpenWhisk does (a JSON object with api_version)."""
    try:
        return response.status_code == 200 and "api_version" in response.json()
    except ValueError:
        return False


def check_openwhisk(api: OpenWhiskApi) -> str:
    """The namespace the key belongs to, after checking the host is OpenWhisk and accepts the key."""
    apihost = api.apihost
    response = api.get("/api/v1", f"the OpenWhisk API at {apihost}", auth=False)
    if not _is_openwhisk(response):
        raise DeployError(f"{apihost} does not look like an OpenWhisk API host (GET /api/v1 answered "
                          f"{response.status_code}): check --apihost")
    response = api.get("/api/v1/namespaces", f"the OpenWhisk API at {apihost}")
    if response.status_code in (401, 403):
        raise DeployError(f"OpenWhisk at {apihost} rejected the key ({response.status_code}): check --auth "
                          "(or WHISK_AUTH, or AUTH in ~/.wskprops); deploy with the key of the namespace that "
                          "should own the package, e.g. whisk.system")
    if response.status_code != 200:
        raise DeployError(f"OpenWhisk at {apihost} answered {response.status_code} to GET /api/v1/namespaces")
    namespaces = response.json()
    if not namespaces:
        raise DeployError(f"the key has no namespace on {apihost}")
    return str(namespaces[0])


def deployed_keys(api: OpenWhiskApi, namespace: str) -> str:
    """The sealing keys bound on an already deployed messagingWeb ('' if it is not deployed), so a
    redeploy keeps the key that sealed the credentials already handed out."""
    response = api.get(f"/api/v1/namespaces/{namespace}/packages/{WEB_PACKAGE}", f"OpenWhisk at {api.apihost}")
    if response.status_code == 404:
        return ""
    if response.status_code != 200:
        raise DeployError(f"reading the deployed {WEB_PACKAGE} package failed: {response.status_code}")
    for parameter in response.json().get("parameters", []):
        if parameter.get("key") == "sealing_keys" and isinstance(parameter.get("value"), str):
            return str(parameter["value"])
    return ""


def wait_activation(api: OpenWhiskApi, name: str, since_ms: int, timeout_s: float) -> str:
    """The id of the first activation of `name` that started after since_ms."""
    def check() -> str | None:
        response = api.get(f"/api/v1/namespaces/_/activations?name={name}&since={since_ms}&limit=1",
                           f"OpenWhisk at {api.apihost}")
        found = response.json() if response.status_code == 200 else []
        return str(found[0]["activationId"]) if found else None
    return until(check, timeout_s, f"no activation of {name} within {timeout_s:.0f}s: is the consumer running? "
                                   "(see its log)")
