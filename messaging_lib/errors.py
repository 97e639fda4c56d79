"""The library's one exception tree and the stable list of dead-letter reasons.

Every error the library raises on purpose is a ``MessagingError``::

    MessagingError                 base; catch it to catch everything below
     ├── BadMessage                a record that can never be fired; carries a ``Reason``
     ├── CredentialError           a sealed credential cannot be made or opened
     ├── ConfigError               bad settings; names the variable (never its secret value)
     └── RecordError               a subscriptions-topic record that cannot be read

``Reason`` lists every code a dead-letter record may carry in its ``dl_reason`` header (see
``topics``). The values are a wire contract read by operators and tools: add new members, never
rename or reuse one. Members are ``str`` subclasses, so ``reason == "not-json"`` holds and
``reason.value.encode()`` is the header value.
"""

from enum import StrEnum, unique


@unique
class Reason(StrEnum):
    """Why a record went to the dead-letter topic (the ``dl_reason`` header value)."""

    # The record is not a valid envelope (raised by ``envelope``).
    NOT_JSON = "not-json"  # value is not UTF-8 JSON (or has duplicate keys, NaN, ...)
    NOT_AN_OBJECT = "not-an-object"  # structured mode: the JSON value is not an object
    MISSING_FIELD = "missing-field"  # a required attribute is absent or null
    WRONG_TYPE = "wrong-type"  # an attribute is not a non-empty (UTF-8) string
    BAD_SPECVERSION = "bad-specversion"  # specversion is not "1.0"
    BAD_TYPE = "bad-type"  # type is not org.apache.openwhisk.trigger.fire
    BAD_TRIGGER_NAME = "bad-trigger-name"  # owtrigger is not a valid /namespace/name
    BAD_DATA = "bad-data"  # data is not a JSON object (or cannot be encoded as one)
    BAD_TIME = "bad-time"  # time is not an RFC 3339 timestamp
    BAD_HEADER = "bad-header"  # binary mode: a header is malformed, duplicated or not UTF-8
    BAD_CONTENT_TYPE = "bad-content-type"  # content-type / datacontenttype is not JSON
    PAYLOAD_TOO_LARGE = "payload-too-large"  # encoded data is over the payload limit
    # The envelope is well formed but may not be fired (raised by ``credentials`` or the firer).
    BAD_CREDENTIAL = "bad-credential"  # owcredential does not open with any sealing key
    CREDENTIAL_EXPIRED = "credential-expired"  # owcredential is older than the allowed age
    CREDENTIAL_OUT_OF_SCOPE = "credential-out-of-scope"  # owtrigger is outside the scope
    APIHOST_NOT_ALLOWED = "apihost-not-allowed"  # owapihost is not on the firer's allow-list
    # Firing failed (raised by the firer; listed here so every reason lives in one place).
    FIRE_REJECTED = "fire-rejected"  # a permanent HTTP status (400, 401, 403, 404, 413)
    RETRIES_EXHAUSTED = "retries-exhausted"  # retryable failures until the maximum age
    # Routing a subscribed topic's record (raised by the router).
    SUBSCRIPTION_DISABLED = "subscription-disabled"  # the trigger's subscription is disabled (401/403/404)


class MessagingError(Exception):
    """Base of every error raised on purpose by this library."""


class BadMessage(MessagingError):
    """A record that can never be fired; it belongs on the dead-letter topic.

    ``reason`` is the stable machine-readable code; ``detail`` is a short human explanation
    that never contains a credential or key.
    """

    def __init__(self, reason: Reason, detail: str) -> None:
        super().__init__(reason, detail)
        self.reason = Reason(reason)
        self.detail = detail

    def __str__(self) -> str:
        return f"{self.reason.value}: {self.detail}"


class CredentialError(MessagingError):
    """A sealed credential cannot be made (bad key or scope) or opened (tampered, foreign, expired).

    ``reason`` is ``BAD_CREDENTIAL`` or ``CREDENTIAL_EXPIRED``, ready for a dead-letter record.
    """

    def __init__(self, detail: str, reason: Reason = Reason.BAD_CREDENTIAL) -> None:
        super().__init__(detail, reason)
        self.detail = detail
        self.reason = Reason(reason)

    def __str__(self) -> str:
        return self.detail


class ConfigError(MessagingError):
    """A setting is missing or invalid. ``variable`` names it; its value is never echoed."""

    def __init__(self, variable: str, detail: str) -> None:
        super().__init__(variable, detail)
        self.variable = variable
        self.detail = detail

    def __str__(self) -> str:
        return f"{self.variable}: {self.detail}"


class RecordError(MessagingError):
    """A subscriptions-topic record (``feed.records``) that is malformed or of an unknown version."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail

    def __str__(self) -> str:
        return self.detail
