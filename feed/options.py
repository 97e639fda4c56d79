"""The feed's options in one table: the ``Options`` dataclass, one line per option.

Each field carries its row (``option(...)``): the parameter name, which is also its READ key and
its key in the subscription record; its kind, which validates a parameter (with the old package's
exact wording for the options it had) and a record value; whether the old package had it (such
options come first in READ); whether it changes how a
message is encoded. Parsing parameters, the READ config, the record's ``options`` object and
``Options.encoding`` are all driven by the table, so a new option is one line here plus its
behaviour. Cross-option rules (``RULES``) are checked on the result of every CREATE and UPDATE.

Also here: the other parameters' parsers (``startFrom``) and the one true/false parser of the
actions.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, datetime
from typing import Any

from feed.errors import FeedError
from messaging_lib.envelope import DEFAULT_MAX_PAYLOAD_BYTES
from messaging_lib.errors import RecordError

DEFAULT_MAX_BATCH_MESSAGES = 10_000
DEFAULT_BATCH_WINDOW_MS = 100
MAX_BATCH_WINDOW_MS = 60_000
MAX_BATCH_MESSAGES = 100_000
LATEST, EARLIEST = "latest", "earliest"
START_FROM_TEXT = ("The 'startFrom' parameter must be latest, earliest or an ISO 8601 timestamp, "
                   "e.g. 2024-05-01T12:00:00Z.")


# --- parsing values -----------------------------------------------------------------------------


def parse_bool(value: object) -> bool | None:
    """A JSON boolean or the text true/false (any case, spaces around); None for anything else.

    The one true/false parser of the actions: the CLI sends ``-p x true`` as JSON, while
    wskdeploy inputs and hand-written requests may send text."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    return None


def record_int(value: object, what: str, minimum: int = 0) -> int:
    """An integer field of a record (booleans are not integers). Raises ``RecordError``."""
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise RecordError(f"{what} must be an integer >= {minimum}")
    return value


@dataclass(frozen=True)
class Flag:
    """true or false."""

    def parse(self, name: str, value: object, payload_cap: int) -> bool:
        parsed = parse_bool(value)
        if parsed is None:
            raise FeedError(f"The '{name}' parameter must be true or false.")
        return parsed

    def from_record(self, name: str, value: object) -> bool:
        if not isinstance(value, bool):
            raise RecordError(f"{name} must be a boolean")
        return value


@dataclass(frozen=True)
class WholeNumber:
    """A whole number from ``low`` to ``high`` (None: the service's payload cap, max_payload_bytes)."""

    low: int
    high: int | None = None

    def parse(self, name: str, value: object, payload_cap: int) -> int:
        high = payload_cap if self.high is None else self.high
        if isinstance(value, str) and value.strip().isdigit():
            value = int(value.strip())
        if not isinstance(value, int) or isinstance(value, bool) or not self.low <= value <= high:
            raise FeedError(f"The '{name}' parameter must be a whole number from {self.low} to {high}.")
        return value

    def from_record(self, name: str, value: object) -> int:
        return record_int(value, name, self.low)


@dataclass(frozen=True)
class Option:
    """One row of the table: ``name`` is the parameter, the READ key and the record key."""

    name: str
    kind: Flag | WholeNumber
    legacy: bool = False  # the old package had it
    encoding: bool = False  # it changes how a message is encoded (the router converts once per encoding)
    field_name: str = ""  # its Options field (filled in from the dataclass)


def option(default: Any, name: str, kind: Flag | WholeNumber, *, legacy: bool = False,
           encoding: bool = False) -> Any:
    return field(default=default, metadata={"option": Option(name, kind, legacy, encoding)})


FLAG = Flag()


# --- the table ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Options:
    """How the router turns a subscription's records into fired messages, and how it batches them."""

    is_json_data: bool = option(False, "isJSONData", FLAG, legacy=True, encoding=True)
    is_binary_key: bool = option(False, "isBinaryKey", FLAG, legacy=True, encoding=True)
    is_binary_value: bool = option(False, "isBinaryValue", FLAG, legacy=True, encoding=True)
    max_batch_bytes: int = option(DEFAULT_MAX_PAYLOAD_BYTES, "maxBatchBytes", WholeNumber(1))
    max_batch_messages: int = option(DEFAULT_MAX_BATCH_MESSAGES, "maxBatchMessages",
                                     WholeNumber(1, MAX_BATCH_MESSAGES))
    batch_window_ms: int = option(DEFAULT_BATCH_WINDOW_MS, "batchWindowMs", WholeNumber(0, MAX_BATCH_WINDOW_MS))

    @property
    def encoding(self) -> tuple[object, ...]:
        """The options that change a message's encoding (records are converted once per value)."""
        return tuple(getattr(self, o.field_name) for o in OPTIONS if o.encoding)


OPTIONS: tuple[Option, ...] = tuple(replace(f.metadata["option"], field_name=f.name) for f in fields(Options))

# Checked on the options a CREATE or UPDATE would leave: (broken by, the old package's refusal).
RULES: tuple[tuple[Callable[[Options], bool], str], ...] = (
    (lambda o: o.is_json_data and o.is_binary_value, "isJSONData and isBinaryValue cannot both be enabled."),
)

# The old package's refusal of an UPDATE that names no option, word for word (its spelling, isJsonData,
# kept: clients match it). The batch limits can be updated too; the README's option table says so.
UPDATE_NEEDS = "At least one of isJsonData, isBinaryKey, or isBinaryValue must be supplied."


# --- parameters ---------------------------------------------------------------------------------


def given(params: Mapping[str, object]) -> dict[str, object]:
    """The options a request names (a null value counts as not given)."""
    return {o.name: params[o.name] for o in OPTIONS if params.get(o.name) is not None}


def parse(params: Mapping[str, object], base: Options, payload_cap: int) -> Options:
    """``base`` with the options ``params`` names, in table order; then every rule on the result."""
    changes: dict[str, Any] = {o.field_name: o.kind.parse(o.name, params[o.name], payload_cap) for o in OPTIONS
                               if params.get(o.name) is not None}
    options = replace(base, **changes)
    for broken, refusal in RULES:
        if broken(options):
            raise FeedError(refusal)
    return options


def parse_start_from(params: Mapping[str, object]) -> str:
    """latest (the default), earliest, or an ISO 8601 timestamp as given (trimmed)."""
    value = params.get("startFrom")
    if value is None or value == "":
        return LATEST
    if isinstance(value, str) and value.strip().lower() in (LATEST, EARLIEST):
        return value.strip().lower()
    if isinstance(value, str):
        try:
            timestamp_ms(value)
            return value.strip()
        except ValueError:
            pass
    raise FeedError(START_FROM_TEXT)


def timestamp_ms(text: str) -> int:
    """An ISO 8601 timestamp in epoch milliseconds (UTC when it names no zone). Raises ValueError."""
    moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


# --- READ and records ---------------------------------------------------------------------------


def read_view(options: Options, legacy: bool) -> dict[str, object]:
    """READ's keys for the old package's options (``legacy``) or for the others, in table order."""
    return {o.name: getattr(options, o.field_name) for o in OPTIONS if o.legacy == legacy}


def to_record(options: Options) -> dict[str, object]:
    return {o.name: getattr(options, o.field_name) for o in OPTIONS}


def from_record(value: object) -> Options:
    """The record's ``options`` object. Raises only ``RecordError``."""
    if not isinstance(value, dict):
        raise RecordError("options must be an object")
    fields: dict[str, Any] = {o.field_name: o.kind.from_record(o.name, value.get(o.name)) for o in OPTIONS}
    return Options(**fields)


# --- what the router derives --------------------------------------------------------------------


@dataclass(frozen=True)
class BatchLimits:
    """When a subscription's batch closes (consumer.batching): bytes, messages, window."""

    max_bytes: int
    max_messages: int
    window_s: float


def batch_limits(options: Options, cap_bytes: int) -> BatchLimits:
    """The batch limits of ``options`` under the service's payload cap."""
    return BatchLimits(min(options.max_batch_bytes, cap_bytes), options.max_batch_messages,
                       options.batch_window_ms / 1000)
