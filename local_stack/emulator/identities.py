"""Namespaces and their API keys, and the Basic-auth lookup every authenticated request makes.

Ships the standalone OpenWhisk identities (`guest`, `whisk.system`); more come from a JSON file:

    {"namespaces": [{"name": "alice", "auth": "<uuid>:<key>", "limits": {"firesPerMinute": 10}}]}

(`uuid` and `key` may be given as separate fields instead of `auth`; a bare list works too.)
The lookup table is keyed by the full `Authorization` header value, so the hot path is one dict get.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from pathlib import Path

from .config import ThrottleLimits

GUEST_AUTH = "23bc46b1-71f6-4ed5-8c54-816aa4f8c502:123zO3xZCLrMN6v2BKK1dXYFpXlPkccOFqm12CdAsMgRU4VrNZ9lyGVCGuMDGIwP"
WHISK_SYSTEM_AUTH = (
    "789c46b1-71f6-4ed5-8c54-816aa4f8c502:abczO3xZCLrMN6v2BKK1dXYFpXlPkccOFqm12CdAsMgRU4VrNZ9lyGVCGuMDGIwP"
)


@dataclass(frozen=True)
class Identity:
    namespace: str
    uuid: str
    key: str
    subject: str

    @property
    def auth(self) -> str:
        """The `uuid:key` form used in wskprops and in `__OW_API_KEY`."""
        return f"{self.uuid}:{self.key}"

    def __repr__(self) -> str:  # never print a key
        return f"Identity(namespace={self.namespace!r}, uuid={self.uuid!r})"


@dataclass(frozen=True)
class NamespaceSpec:
    identity: Identity
    limits: dict[str, int]  # camelCase overrides of the default limits


class IdentityError(ValueError):
    """The namespaces file is malformed; the message says where."""


def identity_from_auth(namespace: str, auth: str, subject: str | None = None) -> Identity:
    uuid, sep, key = auth.partition(":")
    if not sep or not uuid or not key:
        raise IdentityError(f"namespace '{namespace}': auth must be '<uuid>:<key>'")
    return Identity(namespace=namespace, uuid=uuid, key=key, subject=subject or namespace)


def default_specs() -> list[NamespaceSpec]:
    return [NamespaceSpec(identity_from_auth("guest", GUEST_AUTH), {}),
            NamespaceSpec(identity_from_auth("whisk.system", WHISK_SYSTEM_AUTH), {})]


def load_specs(path: Path) -> list[NamespaceSpec]:
    try:
        raw = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise IdentityError(f"cannot read namespaces file {path}: {e}") from e
    entries = raw.get("namespaces") if isinstance(raw, dict) else raw
    if not isinstance(entries, list):
        raise IdentityError(f"{path}: expected a list of namespaces or {{'namespaces': [...]}}")
    specs = []
    for entry in entries:
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            raise IdentityError(f"{path}: each namespace needs a 'name': {entry!r}")
        name = entry["name"]
        auth = entry.get("auth") or f"{entry.get('uuid', '')}:{entry.get('key', '')}"
        limits = entry.get("limits") or {}
        try:
            ThrottleLimits().updated(limits)
        except ValueError as e:
            raise IdentityError(f"{path}: namespace '{name}': {e}") from e
        specs.append(NamespaceSpec(identity_from_auth(name, auth, entry.get("subject")), dict(limits)))
    return specs


class Identities:
    """All known namespaces; later registrations of a namespace replace earlier ones."""

    def __init__(self, identities: list[Identity]) -> None:
        self._by_namespace: dict[str, Identity] = {}
        self._by_header: dict[str, Identity] = {}
        self._by_auth: dict[str, Identity] = {}
        for identity in identities:
            self.add(identity)

    def add(self, identity: Identity) -> None:
        old = self._by_namespace.pop(identity.namespace, None)
        if old is not None:
            self._by_auth.pop(old.auth, None)
            self._by_header = {h: i for h, i in self._by_header.items() if i is not old}
        self._by_namespace[identity.namespace] = identity
        self._by_auth[identity.auth] = identity
        token = base64.b64encode(identity.auth.encode()).decode()
        self._by_header[f"Basic {token}"] = identity

    def by_namespace(self, namespace: str) -> Identity | None:
        return self._by_namespace.get(namespace)

    def namespaces(self) -> list[str]:
        return list(self._by_namespace)

    def from_header(self, header: str) -> Identity | None:
        """The identity for an `Authorization` header value, or None when it is not a known key."""
        found = self._by_header.get(header)
        if found is not None:
            return found
        scheme, _, token = header.strip().partition(" ")
        if scheme.lower() != "basic":
            return None
        try:
            decoded = base64.b64decode(token.strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return None
        return self._by_auth.get(decoded)
