"""Fired messages and batches: what the router puts in a trigger's payload (DESIGN.md section 6).

Pure functions and one small class, no I/O. The fired payload is
``{"messages":[{"topic","partition","offset","key","value","timestamp","headers"}, ...]}``:

- ``key``/``value``: null when the record has none; else UTF-8 text (invalid bytes replaced by
  U+FFFD, as the old feed did); base64 (standard alphabet, padded, **no line breaks**) with
  ``isBinaryKey``/``isBinaryValue``; with ``isJSONData`` the value parsed as JSON, or, if it is
  not valid JSON (NaN/Infinity included), the **plain text** (never wrapped in extra quotes).
- ``timestamp``: the record's timestamp in epoch milliseconds.
- ``headers``: a list of ``[name, value]`` pairs in record order (Kafka allows repeated names,
  which a JSON object would lose); values are text like ``value``, base64 with ``isBinaryValue``.

Sizes are exact: a message is encoded once, compactly (the firer's own JSON settings), and a
batch's payload is those bytes joined, so ``payload_size`` is the length of what is fired and a
batch never exceeds its limit. A message that cannot fit alone is for the dead-letter topic.

The router's path is the bulk one: ``encode_records`` writes a partition's records straight to
those bytes (the same bytes as ``encode(message(...))``, without a dict per record: the string
encoder is json's own), once per distinct encoding, and ``Batcher.add_many`` adds a run of them
to a trigger's batches with the same closing rules as ``add``, by prefix sums of their sizes
(``Sizes``) instead of a step per message, so a subscription costs per batch, not per message.
"""

from __future__ import annotations

import base64
import json
from bisect import bisect_right
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from itertools import accumulate
from json.encoder import encode_basestring as _json_string  # json.dumps' own, for ensure_ascii=False
from operator import add
from typing import Any

from feed.options import BatchLimits
from feed.records import Options

_HEAD = b'{"messages":['
_TAIL = b"]}"
_OVERHEAD = len(_HEAD) + len(_TAIL)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _text(raw: bytes | None) -> str | None:
    return None if raw is None else raw.decode("utf-8", "replace")


def _b64(raw: bytes | None) -> str | None:
    return None if raw is None else base64.b64encode(raw).decode("ascii")


def _compact(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def _parsed_json(text: str) -> tuple[Any, str] | None:
    """The value and its compact JSON, or None if the text cannot be fired as JSON: not JSON (NaN
    and Infinity included), a number out of float range (1e400), or lone surrogates."""
    try:
        value = json.loads(text, parse_constant=_reject_constant)
        compact = _compact(value)
        compact.encode("utf-8")
        return value, compact
    except (ValueError, RecursionError, UnicodeEncodeError):
        return None


def _json_or_text(raw: bytes | None) -> Any:
    if raw is None:
        return None
    text = raw.decode("utf-8", "replace")
    parsed = _parsed_json(text)
    return text if parsed is None else parsed[0]


def message(topic: str, partition: int, offset: int, key: bytes | None, value: bytes | None,
            timestamp_ms: int, headers: Sequence[tuple[str, bytes]], options: Options) -> dict[str, Any]:
    """One record as the trigger receives it, under the subscription's encoding options."""
    header_value = _b64 if options.is_binary_value else _text
    if options.is_binary_value:
        shown: Any = _b64(value)
    elif options.is_json_data:
        shown = _json_or_text(value)
    else:
        shown = _text(value)
    return {
        "topic": topic,
        "partition": partition,
        "offset": offset,
        "key": _b64(key) if options.is_binary_key else _text(key),
        "value": shown,
        "timestamp": timestamp_ms,
        "headers": [[name, header_value(raw)] for name, raw in headers],
    }


def encode(msg: dict[str, Any]) -> bytes:
    """A message as it appears inside the payload (compact UTF-8 JSON, like the firer's)."""
    return json.dumps(msg, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode("utf-8")


# --- the bulk path: JSON text straight from the record's bytes ------------------------------------


def _text_json(raw: bytes | None) -> str:
    return "null" if raw is None else _json_string(raw.decode("utf-8", "replace"))


def _b64_json(raw: bytes | None) -> str:
    return "null" if raw is None else f'"{base64.b64encode(raw).decode("ascii")}"'


def _json_or_text_json(raw: bytes | None) -> str:
    if raw is None:
        return "null"
    text = raw.decode("utf-8", "replace")
    parsed = _parsed_json(text)
    return _json_string(text) if parsed is None else parsed[1]


def encode_records(topic: str, partition: int, records: Sequence[Any], options: Options) -> list[bytes]:
    """``encode(message(...))`` of each record (``offset``, ``key``, ``value``, ``timestamp``,
    ``headers`` attributes), byte for byte, built as text: json.dumps' own string encoder for
    strings, int formatting for numbers, json.dumps for a parsed isJSONData value."""
    head = f'{{"topic":{_json_string(topic)},"partition":{partition},"offset":'
    key_json = _b64_json if options.is_binary_key else _text_json
    value_json = (_b64_json if options.is_binary_value else _json_or_text_json if options.is_json_data
                  else _text_json)
    header_json = _b64_json if options.is_binary_value else _text_json
    out: list[bytes] = []
    append = out.append
    for r in records:
        headers = r.headers
        shown = ("[" + ",".join(f"[{_json_string(name)},{header_json(raw)}]" for name, raw in headers) + "]"
                 if headers else "[]")
        append(f'{head}{r.offset},"key":{key_json(r.key)},"value":{value_json(r.value)},'
               f'"timestamp":{r.timestamp},"headers":{shown}}}'.encode())
    return out


class Sizes:
    """Prefix sums of encoded messages' sizes plus one (a comma each): ``at[k] - at[i]`` is what
    messages i..k-1 add to a batch that already holds one. Shared by every subscription that
    receives the same encoded messages."""

    __slots__ = ("at",)

    def __init__(self, encoded: Sequence[bytes]) -> None:
        self.at = list(map(add, accumulate(map(len, encoded), initial=0), range(len(encoded) + 1)))


def payload_size(message_sizes: Iterable[int]) -> int:
    sizes = list(message_sizes)
    return _OVERHEAD + sum(sizes) + max(0, len(sizes) - 1)


def payload(messages: Sequence[bytes]) -> bytes:
    """The fired payload: ``{"messages":[...]}`` from already encoded messages, copied once:
    the head and tail go onto the first and last message (small copies), so the one large
    copy is the join (``_HEAD + joined + _TAIL`` made two more of a payload of up to a
    megabyte, each a fresh allocation: nine times the join's cost, measured)."""
    if not messages:
        return _HEAD + _TAIL
    parts = list(messages)
    parts[0] = _HEAD + parts[0]
    parts[-1] += _TAIL
    return b",".join(parts)


def fits_alone(encoded: bytes, max_bytes: int) -> bool:
    return _OVERHEAD + len(encoded) <= max_bytes


@dataclass(slots=True)
class Batch:
    """Messages for one trigger under one configuration version, and the records behind them."""

    trigger: str
    version: int
    credential: str = field(repr=False)
    limits: BatchLimits
    opened_s: float
    messages: list[bytes] = field(default_factory=list, repr=False)
    refs: list[object] = field(default_factory=list, repr=False)
    size: int = _OVERHEAD  # of the payload so far, exactly

    def due_s(self) -> float:
        return self.opened_s + self.limits.window_s


class Batcher:
    """The open batch of each trigger. ``add`` and ``due`` return batches ready to be sent, in
    the order their messages arrived; nothing else keeps per-trigger state."""

    def __init__(self) -> None:
        self._open: dict[str, Batch] = {}

    def __len__(self) -> int:
        return len(self._open)

    def add(self, trigger: str, version: int, credential: str, limits: BatchLimits, encoded: bytes, ref: object,
            now_s: float) -> list[Batch]:
        """Add a message that fits alone (see ``fits_alone``). A batch closes before a message
        would take it over its byte limit (an empty batch takes any message: one over the batch
        limit but within the payload limit fires alone), at its count, or once its window passed."""
        closed = []
        size = len(encoded)
        batch = self._open.get(trigger)
        if batch is not None and (batch.version != version or batch.size + size + 1 > batch.limits.max_bytes):
            closed.append(self._open.pop(trigger))
            batch = None
        if batch is None:
            batch = self._open[trigger] = Batch(trigger, version, credential, limits, now_s)
            batch.size += size
        else:
            batch.size += size + 1
        batch.messages.append(encoded)
        batch.refs.append(ref)
        if len(batch.messages) >= limits.max_messages or now_s >= batch.opened_s + limits.window_s:
            closed.append(self._open.pop(trigger))
        return closed

    def add_many(self, trigger: str, version: int, credential: str, limits: BatchLimits, encoded: Sequence[bytes],
                 sizes: Sizes, lo: int, hi: int, ref: Callable[[int, int], object], now_s: float) -> list[Batch]:
        """``add`` of ``encoded[lo:hi]`` (each fits alone), in order, with the same batches as a
        call per message; a batch's refs get ``ref(i, k)`` for the messages i..k-1 it took."""
        closed: list[Batch] = []
        at = sizes.at
        batch = self._open.get(trigger)
        if batch is not None and batch.version != version:
            closed.append(self._open.pop(trigger))
            batch = None
        i = lo
        while i < hi:
            if batch is None:
                batch = self._open[trigger] = Batch(trigger, version, credential, limits, now_s)
                batch.size -= 1  # the first message adds no comma
            took = len(batch.messages)
            # the most messages that keep the batch within its byte limit (an empty batch takes
            # any message), up to its count, and a single one if its window has passed already
            k = max(i, bisect_right(at, batch.limits.max_bytes - batch.size + at[i], i, hi + 1) - 1)
            if not took:
                k = max(k, i + 1)
            late = now_s >= batch.opened_s + limits.window_s
            k = min(k, i + limits.max_messages - took, i + 1 if late else hi)
            if k <= i:  # the next message does not fit: this batch is done
                closed.append(self._open.pop(trigger))
                batch = None
                continue
            batch.messages.extend(encoded[i:k])
            batch.refs.append(ref(i, k))
            batch.size += at[k] - at[i]
            i = k
            if len(batch.messages) >= limits.max_messages or late:
                closed.append(self._open.pop(trigger))
                batch = None
        return closed

    def due(self, now_s: float) -> list[Batch]:
        ready = [t for t, b in self._open.items() if now_s >= b.due_s()]
        return [self._open.pop(t) for t in ready]

    def close(self, trigger: str) -> list[Batch]:
        batch = self._open.pop(trigger, None)
        return [] if batch is None else [batch]

    def close_all(self) -> list[Batch]:
        batches = list(self._open.values())
        self._open.clear()
        return batches

    def next_due_s(self) -> float | None:
        return min((b.due_s() for b in self._open.values()), default=None)
