"""The shared core of the messaging package: what producers, actions and the consumer agree on.

Imported both by the consumer service and by OpenWhisk Python actions (python:3.11 runtime), so it
uses only the standard library and ``cryptography`` (AES-GCM-SIV, Fernet), and importing it has no side
effects: it reads no environment and opens no connection.

Modules, each owning one contract (imports flow downwards only)::

    errors        the exception tree and the stable dead-letter ``Reason`` codes
    topics        default topic names, the subscriptions topic's spec, trigger URLs, dead-letter headers
    envelope      the envelope v1 (CloudEvents structured and binary mode), trigger names
    credentials   sealed credentials: AEAD (v2) or Fernet (v1) tokens of {key, scope, iat, exp}, scope checks, rotation
    kafka_config  Kafka client settings from the environment or action parameters

The feed's subscription records and lifecycle are the top-level ``feed`` package, built on this one.
"""

from .credentials import Credential, Sealer
from .envelope import Envelope, parse_record, to_binary, to_structured
from .errors import BadMessage, ConfigError, CredentialError, MessagingError, Reason
from .kafka_config import KafkaSettings

__all__ = [
    "BadMessage",
    "ConfigError",
    "Credential",
    "CredentialError",
    "Envelope",
    "KafkaSettings",
    "MessagingError",
    "Reason",
    "Sealer",
    "parse_record",
    "to_binary",
    "to_structured",
]
