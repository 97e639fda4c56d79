"""Sealed credentials (DESIGN.md section 4): how an OpenWhisk key travels inside a message.

A sealed credential is a Fernet token (authenticated encryption) of the compact JSON
``{"key": "uuid:secret", "scope": ["/ns/trigger" | "/ns/*", ...], "iat": <epoch seconds>}``.
Whoever holds the sealing keys (the ``produce``/``token``/``kafkaFeed`` web actions and the
firer) can open it; anyone else sees opaque text. The scope limits what the firer may fire with
the key inside: ``/ns/T`` is that one trigger, ``/ns/*`` every trigger of namespace ``ns``.

Keys rotate through ``MultiFernet``: the first key seals, every key in the list opens, so a new
key is put first, and an old one is dropped once no live token needs it.

This module owns the token format and its checks: the API key shape (``uuid:64 alphanumerics``,
docs/openwhisk-api.md 1.2), scope entries, canonical base64 (so no two token strings open to the
same credential, and any one-character change is refused), and the optional maximum age. Every
failure to open is a ``CredentialError``; ``Sealer.authorize`` turns those, and a trigger outside
the scope, into the ``BadMessage`` the firer dead-letters. No key or secret ever appears in an
error message or a ``repr``.
"""

import base64
import binascii
import json
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from .envelope import TriggerName, check_namespace, parse_trigger_fqn
from .errors import BadMessage, ConfigError, CredentialError, Reason

WHOLE_NAMESPACE = "*"
# How far in the future a token's iat may be (clocks of sealer and opener differ a little).
MAX_CLOCK_SKEW_S = 60

_API_KEY_RE = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}:[0-9A-Za-z]{64}")


def check_api_key(api_key: object) -> str:
    """Return ``api_key`` if it has OpenWhisk's ``uuid:secret`` shape; ``CredentialError`` if not."""
    if not isinstance(api_key, str) or not _API_KEY_RE.fullmatch(api_key):
        raise CredentialError("the API key is not of the form <uuid>:<64 alphanumeric characters>")
    return api_key


def parse_scope_entry(entry: object) -> TriggerName:
    """Split ``/ns/T`` or ``/ns/*``; the name of a whole-namespace entry is ``WHOLE_NAMESPACE``."""
    if not isinstance(entry, str):
        raise CredentialError("a scope entry is not a string")
    if entry.startswith("/") and entry.endswith("/" + WHOLE_NAMESPACE):
        namespace = entry[1 : -len(WHOLE_NAMESPACE) - 1]
        try:
            return TriggerName(check_namespace(namespace), WHOLE_NAMESPACE)
        except BadMessage as exc:
            raise CredentialError(f"scope entry {entry!r}: {exc.detail}") from None
    try:
        return parse_trigger_fqn(entry)
    except BadMessage as exc:
        raise CredentialError(f"scope entry is not /namespace/trigger or /namespace/*: {exc.detail}") from None


def check_scope(scope: object) -> tuple[str, ...]:
    """Return ``scope`` as a tuple if it is a non-empty list of valid entries."""
    if isinstance(scope, str | bytes) or not isinstance(scope, Iterable):
        raise CredentialError("the scope must be a list of /namespace/trigger or /namespace/* entries")
    entries = tuple(scope)
    if not entries:
        raise CredentialError("the scope is empty")
    for entry in entries:
        parse_scope_entry(entry)
    return entries


def namespace_scope(namespace: str) -> str:
    """The scope entry that allows every trigger of ``namespace``."""
    return f"/{namespace}/{WHOLE_NAMESPACE}"


@dataclass(frozen=True)
class Credential:
    """An opened credential. ``key`` is the plain ``uuid:secret``, so it is kept out of ``repr``."""

    key: str = field(repr=False)
    scope: tuple[str, ...]
    iat: int

    def __post_init__(self) -> None:
        check_api_key(self.key)
        object.__setattr__(self, "scope", check_scope(self.scope))
        if not isinstance(self.iat, int) or isinstance(self.iat, bool) or self.iat < 0:
            raise CredentialError("iat must be a non-negative integer (epoch seconds)")

    @cached_property
    def _grants(self) -> frozenset[TriggerName]:
        return frozenset(parse_scope_entry(entry) for entry in self.scope)

    def allows(self, trigger_fqn: str) -> bool:
        """Whether the scope covers the trigger ``/ns/name`` (an invalid name is never allowed)."""
        try:
            namespace, name = parse_trigger_fqn(trigger_fqn)
        except BadMessage:
            return False
        grants = self._grants
        return TriggerName(namespace, name) in grants or TriggerName(namespace, WHOLE_NAMESPACE) in grants


def _fernet(key: str, variable: str, position: int) -> Fernet:
    try:
        return Fernet(key)
    except (TypeError, ValueError):
        raise ConfigError(variable, f"key #{position + 1} is not a Fernet key (32 url-safe base64 bytes)") from None


def generate_key() -> str:
    """A new random sealing key (url-safe base64 text)."""
    return Fernet.generate_key().decode("ascii")


def parse_key_list(text: str, variable: str = "sealing keys") -> list[str]:
    """Split a comma-separated key list (a setting); the first key seals. ``ConfigError`` names
    ``variable`` when the list is empty or a key is malformed (the key itself is never shown)."""
    if not isinstance(text, str):
        raise ConfigError(variable, "must be a comma-separated list of Fernet keys")
    keys = [part.strip() for part in text.split(",") if part.strip()]
    if not keys:
        raise ConfigError(variable, "no sealing key given")
    for position, key in enumerate(keys):
        _fernet(key, variable, position)
    return keys


def _token_bytes(token: object) -> bytes:
    """The token as canonical url-safe base64 bytes; anything else is refused."""
    if not isinstance(token, str) or not token:
        raise CredentialError("the credential is not a non-empty string")
    try:
        raw = token.encode("ascii")
        canonical = base64.urlsafe_b64encode(base64.urlsafe_b64decode(raw)) == raw
    except (UnicodeEncodeError, binascii.Error, ValueError):
        canonical = False
    if not canonical:
        raise CredentialError("the credential is not a sealed token")
    return raw


def _credential_from(plaintext: bytes) -> Credential:
    try:
        content: Any = json.loads(plaintext.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise CredentialError("the sealed content is not a credential") from None
    if not isinstance(content, dict):
        raise CredentialError("the sealed content is not a credential")
    return Credential(content.get("key"), content.get("scope"), content.get("iat"))


class Sealer:
    """Seals and opens credentials with a list of Fernet keys (first seals, all open).

    ``clock`` returns epoch seconds; tests inject one to control ``iat`` and ages.
    """

    def __init__(
        self, keys: list[str], *, clock: Callable[[], float] = time.time, variable: str = "sealing keys"
    ) -> None:
        if isinstance(keys, str | bytes) or not keys:
            raise ConfigError(variable, "needs a non-empty list of Fernet keys")
        self._fernet = MultiFernet([_fernet(key, variable, position) for position, key in enumerate(keys)])
        self._key_count = len(keys)
        self._clock = clock

    def __repr__(self) -> str:
        return f"Sealer(<{self._key_count} keys>)"

    def seal(self, api_key: str, scope: list[str]) -> str:
        """Seal ``api_key`` for ``scope``, issued now. ``CredentialError`` on a bad key or scope."""
        credential = Credential(api_key, check_scope(scope), int(self._clock()))
        content = {"key": credential.key, "scope": list(credential.scope), "iat": credential.iat}
        plaintext = json.dumps(content, separators=(",", ":")).encode("utf-8")
        return self._fernet.encrypt_at_time(plaintext, credential.iat).decode("ascii")

    def open(self, token: str, *, max_age_s: float | None = None) -> Credential:
        """Open a sealed credential; with ``max_age_s``, also refuse one issued longer ago.

        Raises only ``CredentialError`` (reason ``credential-expired`` for an old token).
        """
        raw = _token_bytes(token)
        try:
            plaintext = self._fernet.decrypt(raw)
        except InvalidToken:
            raise CredentialError("the credential does not open with any sealing key") from None
        credential = _credential_from(plaintext)
        if max_age_s is not None:
            now = self._clock()
            if credential.iat > now + MAX_CLOCK_SKEW_S:
                raise CredentialError("the credential was issued in the future")
            if now - credential.iat > max_age_s:
                raise CredentialError(f"the credential is older than {max_age_s:g} s", reason=Reason.CREDENTIAL_EXPIRED)
        return credential

    def authorize(self, token: str, trigger_fqn: str, *, max_age_s: float | None = None) -> Credential:
        """Open ``token`` and check it may fire ``trigger_fqn``, as the firer does.

        Raises only ``BadMessage``: ``bad-credential``, ``credential-expired`` or
        ``credential-out-of-scope``.
        """
        try:
            credential = self.open(token, max_age_s=max_age_s)
        except CredentialError as exc:
            raise BadMessage(exc.reason, exc.detail) from None
        if not credential.allows(trigger_fqn):
            raise BadMessage(Reason.CREDENTIAL_OUT_OF_SCOPE, f"the credential does not cover {trigger_fqn}")
        return credential
