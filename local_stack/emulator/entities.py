"""The controller's entities (packages, actions, triggers, rules, activations) and their JSON shapes.

Only data and pure helpers live here: names, parameter lists, versions and the exact JSON each
entity is rendered as (openwhisk-api.md sections 1.8, 3-7). Storage is in store.py.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import Any

from .errors import ILLEGAL_NAME, ApiError, malformed

Params = list[dict[str, Any]]  # [{"key": k, "value": v, optional "init": true, "encryption": ...}]

ENTITY_NAME_RE = re.compile(r"\A([\w]|[\w][\w@ .&-]{0,254}[\w@.&-])\Z", re.ASCII)
ACTIVATION_ID_RE = re.compile(r"\A[0-9a-f]{32}\Z")

STATUS_CODES = {"success": 0, "application error": 1, "action developer error": 2, "whisk internal error": 3}
DEFAULT_ACTION_LIMITS = {"timeout": 60000, "memory": 256, "logs": 10, "concurrency": 1}


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def valid_name(name: str) -> bool:
    return ENTITY_NAME_RE.match(name) is not None


def check_name(name: str) -> str:
    if not valid_name(name):
        raise ApiError(400, ILLEGAL_NAME)
    return name


# ---- parameters and annotations -------------------------------------------------------------

def validate_params(value: object, field_name: str) -> Params:
    """A request's `parameters`/`annotations` array, checked and copied."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise ApiError(400, malformed(f"'{field_name}' must be an array of key/value pairs"))
    out: Params = []
    for item in value:
        if not isinstance(item, dict) or not isinstance(item.get("key"), str) or "value" not in item:
            raise ApiError(400, malformed(f"'{field_name}' entries must be objects with 'key' and 'value'"))
        entry: dict[str, Any] = {"key": item["key"], "value": item["value"]}
        if item.get("init") is True:
            entry["init"] = True
        if isinstance(item.get("encryption"), str):
            entry["encryption"] = item["encryption"]
        out.append(entry)
    return _dedupe(out)


def _dedupe(params: Params) -> Params:
    """Later entries with the same key win, like the controller's Map-based Parameters."""
    by_key: dict[str, dict[str, Any]] = {}
    for p in params:
        by_key.pop(p["key"], None)
        by_key[p["key"]] = p
    return list(by_key.values())


def merge_params(low: Params, high: Params) -> Params:
    """`low ++ high`: keys in `high` override those in `low`."""
    return _dedupe([*low, *high])


def remove_keys(params: Params, keys: set[str]) -> Params:
    return [p for p in params if p["key"] not in keys]


def params_to_dict(params: Params) -> dict[str, Any]:
    return {p["key"]: p["value"] for p in params}


def get_param(params: Params, key: str) -> Any:
    for p in params:
        if p["key"] == key:
            return p["value"]
    return None


def has_param(params: Params, key: str) -> bool:
    return any(p["key"] == key for p in params)


def is_truthy(params: Params, key: str, default: bool = False) -> bool:
    """The controller's `Parameters.isTruthy`."""
    if not has_param(params, key):
        return default
    value = get_param(params, key)
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return value != 0
    if isinstance(value, str):
        return value != ""
    return value is not None


def defined_keys(params: Params) -> set[str]:
    return {p["key"] for p in params if p["value"] is not None}


# ---- versions ----------------------------------------------------------------------------------

def parse_version(value: object) -> str:
    """A SemVer string normalised to `major.minor.patch` ("1" and "1.0" are accepted)."""
    if not isinstance(value, str) or not re.fullmatch(r"\d+(\.\d+){0,2}", value.strip()):
        raise ApiError(400, malformed(f"'{value}' is not a valid semantic version"))
    parts = [int(p) for p in value.strip().split(".")] + [0, 0]
    return f"{parts[0]}.{parts[1]}.{parts[2]}"


def bump_patch(version: str) -> str:
    major, minor, patch = (int(p) for p in version.split("."))
    return f"{major}.{minor}.{patch + 1}"


# ---- references ------------------------------------------------------------------------------

@dataclass(frozen=True)
class EntityRef:
    """A fully qualified entity name: `path` is `ns` or `ns/pkg`."""

    path: str
    name: str

    @property
    def namespace(self) -> str:
        return self.path.split("/", 1)[0]

    @property
    def package(self) -> str | None:
        parts = self.path.split("/", 1)
        return parts[1] if len(parts) == 2 else None

    @property
    def docid(self) -> str:
        return f"{self.path}/{self.name}"

    def as_json(self) -> dict[str, str]:
        return {"path": self.path, "name": self.name}

    def __str__(self) -> str:  # the controller's `asString`: no leading slash
        return self.docid

    @property
    def with_slash(self) -> str:
        return f"/{self.docid}"


def parse_ref(value: object, user_namespace: str) -> EntityRef:
    """A rule's `trigger`/`action` reference: `/_/T`, `ns/pkg/a`, `T` or {"path","name"}; `_` resolved."""
    if isinstance(value, dict) and isinstance(value.get("path"), str) and isinstance(value.get("name"), str):
        segments = [*value["path"].strip("/").split("/"), value["name"]]
    elif isinstance(value, str) and value.strip("/"):
        segments = value.strip("/").split("/")
        if not value.startswith("/"):
            segments = [user_namespace, *segments]
    else:
        raise ApiError(400, malformed("an entity reference must be a name or a {path, name} object"))
    if len(segments) < 2 or len(segments) > 3:
        raise ApiError(400, malformed(f"'{value}' is not a valid entity name"))
    if segments[0] == "_":
        segments[0] = user_namespace
    for s in segments:
        check_name(s)
    return EntityRef("/".join(segments[:-1]), segments[-1])


def valid_feed_name(value: object) -> bool:
    """The controller's `EntityPath.validate` for a trigger's `feed` annotation."""
    if not isinstance(value, str):
        return False
    segments = value.strip("/").split("/") if value.startswith("/") else value.split("/")
    return 1 <= len(segments) <= 3 and all(valid_name(s) for s in segments)


# ---- entities ------------------------------------------------------------------------------

@dataclass
class Package:
    namespace: str
    name: str
    version: str = "0.0.1"
    publish: bool = False
    parameters: Params = field(default_factory=list)
    annotations: Params = field(default_factory=list)
    binding: EntityRef | None = None
    updated: int = field(default_factory=now_ms)

    @property
    def docid(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def path(self) -> str:
        """The namespace path of the actions inside this package."""
        return self.docid

    def binding_json(self) -> dict[str, str]:
        return {"namespace": self.binding.path, "name": self.binding.name} if self.binding else {}

    def to_json(self) -> dict[str, Any]:
        return {"namespace": self.namespace, "name": self.name, "version": self.version, "publish": self.publish,
                "annotations": self.annotations, "parameters": self.parameters, "binding": self.binding_json(),
                "updated": self.updated}

    def summary(self) -> dict[str, Any]:
        return {"namespace": self.namespace, "name": self.name, "version": self.version, "publish": self.publish,
                "annotations": self.annotations, "binding": self.binding_json() or False, "updated": self.updated}


@dataclass
class Exec:
    kind: str
    code: str
    binary: bool
    main: str | None = None

    def to_json(self, with_code: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind}
        if with_code:
            out["code"] = self.code
        out["binary"] = self.binary
        if self.main is not None:
            out["main"] = self.main
        return out


@dataclass
class Action:
    namespace: str  # "ns" or "ns/pkg"
    name: str
    exec: Exec
    version: str = "0.0.1"
    publish: bool = False
    parameters: Params = field(default_factory=list)
    annotations: Params = field(default_factory=list)
    limits: dict[str, Any] = field(default_factory=lambda: dict(DEFAULT_ACTION_LIMITS))
    updated: int = field(default_factory=now_ms)

    @property
    def docid(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def ref(self) -> EntityRef:
        return EntityRef(self.namespace, self.name)

    def to_json(self, with_code: bool = True, parameters: Params | None = None) -> dict[str, Any]:
        return {"namespace": self.namespace, "name": self.name, "version": self.version, "publish": self.publish,
                "exec": self.exec.to_json(with_code), "annotations": self.annotations,
                "parameters": self.parameters if parameters is None else parameters,
                "limits": self.limits, "updated": self.updated}

    def summary(self) -> dict[str, Any]:
        return {"namespace": self.namespace, "name": self.name, "version": self.version, "publish": self.publish,
                "annotations": self.annotations, "limits": self.limits, "exec": {"binary": self.exec.binary},
                "updated": self.updated}


@dataclass
class RuleLink:
    action: EntityRef
    status: str  # "active" | "inactive"

    def to_json(self) -> dict[str, Any]:
        return {"action": self.action.as_json(), "status": self.status}


@dataclass
class Trigger:
    namespace: str
    name: str
    version: str = "0.0.1"
    publish: bool = False
    parameters: Params = field(default_factory=list)
    annotations: Params = field(default_factory=list)
    limits: dict[str, Any] = field(default_factory=dict)
    rules: dict[str, RuleLink] | None = None  # keyed by the rule's `ns/name`
    updated: int = field(default_factory=now_ms)

    @property
    def docid(self) -> str:
        return f"{self.namespace}/{self.name}"

    def has_active_rule(self) -> bool:
        return bool(self.rules) and any(link.status == "active" for link in self.rules.values())

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"namespace": self.namespace, "name": self.name, "version": self.version,
                               "publish": self.publish, "annotations": self.annotations,
                               "parameters": self.parameters, "limits": self.limits}
        if self.rules is not None:
            out["rules"] = {name: link.to_json() for name, link in self.rules.items()}
        out["updated"] = self.updated
        return out

    def summary(self) -> dict[str, Any]:
        return {"namespace": self.namespace, "name": self.name, "version": self.version, "publish": self.publish,
                "annotations": self.annotations, "updated": self.updated}


@dataclass
class Rule:
    namespace: str
    name: str
    trigger: EntityRef
    action: EntityRef
    version: str = "0.0.1"
    publish: bool = False
    annotations: Params = field(default_factory=list)
    updated: int = field(default_factory=now_ms)

    @property
    def docid(self) -> str:
        return f"{self.namespace}/{self.name}"

    def to_json(self, status: str | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {"namespace": self.namespace, "name": self.name, "version": self.version,
                               "publish": self.publish, "annotations": self.annotations}
        if status is not None:
            out["status"] = status
        out.update({"trigger": self.trigger.as_json(), "action": self.action.as_json(), "updated": self.updated})
        return out


Entity = Package | Action | Trigger | Rule


@dataclass
class Activation:
    namespace: str  # the invoking (or firing) namespace
    name: str
    version: str
    subject: str
    activation_id: str
    start: int
    end: int  # 0 for trigger activations (left out of the JSON, like the controller's Instant.EPOCH)
    status: str  # a key of STATUS_CODES
    result: Any
    logs: list[str] = field(default_factory=list)
    annotations: Params = field(default_factory=list)
    cause: str | None = None

    @property
    def status_code(self) -> int:
        return STATUS_CODES[self.status]

    @property
    def success(self) -> bool:
        return self.status == "success"

    def response_json(self, with_status_code: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {"status": self.status}
        if with_status_code:
            out["statusCode"] = self.status_code
        out["success"] = self.success
        out["result"] = self.result
        return out

    def _times(self, out: dict[str, Any]) -> None:
        out["start"] = self.start
        if self.end:
            out["end"] = self.end
            out["duration"] = self.end - self.start

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"namespace": self.namespace, "name": self.name, "version": self.version,
                               "subject": self.subject, "activationId": self.activation_id}
        self._times(out)
        out["response"] = self.response_json()
        out["logs"] = self.logs
        out["annotations"] = self.annotations
        out["publish"] = False
        if self.cause:
            out["cause"] = self.cause
        return out

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {"namespace": self.namespace, "name": self.name, "version": self.version,
                               "publish": False, "annotations": self.annotations,
                               "activationId": self.activation_id}
        self._times(out)
        if self.end:
            out["statusCode"] = self.status_code
        if self.cause:
            out["cause"] = self.cause
        return out

    def filter_name(self) -> str:
        """The name `?name=` matches: `pkg/action` (binding name when invoked through one) or `action`."""
        binding = get_param(self.annotations, "binding")
        if isinstance(binding, str) and "/" in binding:
            return f"{binding.split('/')[1]}/{self.name}"
        path = get_param(self.annotations, "path")
        if isinstance(path, str) and path.count("/") == 2:
            return f"{path.split('/')[1]}/{self.name}"
        return self.name

    def result_json(self) -> dict[str, Any]:
        return {"result": self.result, "success": self.success, "status": self.status}
