"""The routers' read API over the subscriptions table: the contract both sides share.

Every router holds the whole subscriptions topic as a table (consumer.subscriptions), so the feed's
web action asks a router for the few records an event needs instead of reading the topic from its
start (issue 15): the answer costs the same at a thousand subscriptions as at a million. The
service stays stateless: the table is rebuilt from Kafka on every start, and Kafka stays the truth
(the action falls back to reading the topic whenever a router cannot answer, feed.store.RouterStore).

    GET /subscriptions/latest?key=subscription:/ns/T&key=status:/ns/T&prefix=grant:ns:&min_offset=41&wait_ms=2000

answers ``{"applied_offset": N, "records": [{"key": b64, "offset": n | null, "value": b64}]}``: the
latest value of each key the table holds (absent: none, or deleted), and of every ``grant:<ns>:``
key for a ``prefix``, once the table has applied the record at ``min_offset`` (read-your-writes:
the caller passes the topic's end offset minus one). The router waits at most ``wait_ms`` (capped
by the router) for its table to get there, else answers 503. ``offset`` is the record's offset
where the table keeps it (a subscription's version), else null. Values are the records as the
table holds them, encoded again (feed.records, feed.grants): the same content the topic holds,
not necessarily the same bytes.

**Authentication.** Only holders of the sealing keys (the web actions, the routers) may ask: the
request carries ``Authorization: MessagingHMAC t=<epoch s>,s=<hex>``, an HMAC-SHA256 of the
time, method and path with query under a secret derived from a sealing key (the idea of
``messaging_lib.credentials.web_auth_secret``, under its own label, since that value is bound on
the public package). The router accepts a signature under any of its keys (rotation), within
``MAX_SKEW_S`` of its clock, compared in constant time; anything else is 401. The answer is signed
too (``ANSWER_HEADER``: the body, bound to the request's signature), since the action writes back
what it reads (PAUSE, UNPAUSE and UPDATE rewrite the subscription): an answer from anyone else at
the router's address is not believed.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Iterable, Mapping, Sequence

from messaging_lib.credentials import parse_key_list
from messaging_lib.errors import RecordError

PATH = "/subscriptions/latest"
SCHEME = "MessagingHMAC"
ANSWER_HEADER = "X-Messaging-Signature"
LABEL = b"messaging subscriptions read API v1"
MAX_SKEW_S = 60
MAX_WAIT_MS = 2000  # the longest a router waits for its table to catch up
_HEADER_RE = re.compile(SCHEME + r" t=(\d{1,12}),s=([0-9a-f]{64})")

Stored = tuple[int, bytes | None]


def api_secrets(sealing_keys: str | Sequence[str]) -> list[bytes]:
    """The API secret of each sealing key (the first one signs). ``ConfigError`` on a bad key list."""
    keys = parse_key_list(sealing_keys) if isinstance(sealing_keys, str) else list(sealing_keys)
    return [hmac.new(base64.urlsafe_b64decode(k), LABEL, hashlib.sha256).digest() for k in keys]


def _mac(secret: bytes, timestamp: int, method: str, path_qs: str) -> str:
    message = f"{timestamp}\n{method.upper()}\n{path_qs}".encode()
    return hmac.new(secret, message, hashlib.sha256).hexdigest()


def authorization(secret: bytes, timestamp: int, method: str, path_qs: str) -> str:
    """The ``Authorization`` header value of a request to ``path_qs`` (path and query, as sent)."""
    return f"{SCHEME} t={timestamp},s={_mac(secret, timestamp, method, path_qs)}"


def authorized(header: str | None, secrets: Iterable[bytes], now_s: float, method: str, path_qs: str) -> bytes | None:
    """The secret among ``secrets`` that signed this request in ``header`` within MAX_SKEW_S of now, or None."""
    found = _HEADER_RE.fullmatch(header or "")
    if found is None:
        return None
    timestamp, given = int(found.group(1)), found.group(2)
    if abs(now_s - timestamp) > MAX_SKEW_S:
        return None
    signer = None
    for secret in secrets:  # every key is tried (no early exit: the time does not tell which matched)
        if hmac.compare_digest(_mac(secret, timestamp, method, path_qs), given):
            signer = secret
    return signer


def answer_signature(secret: bytes, request_authorization: str, body: bytes) -> str:
    """The ``ANSWER_HEADER`` of an answer: an HMAC of the body bound to the request's signature, so
    the action writes back only what a router holding the keys answered to this very request."""
    return hmac.new(secret, request_authorization.encode() + b"\n" + body, hashlib.sha256).hexdigest()


def encode_answer(applied_offset: int, found: Mapping[bytes, tuple[int | None, bytes]]) -> dict:
    return {"applied_offset": applied_offset,
            "records": [{"key": _b64(k), "offset": o, "value": _b64(v)} for k, (o, v) in found.items()]}


def decode_answer(body: object) -> tuple[int, dict[bytes, Stored]]:
    """(applied offset, key -> (offset; -1 when the table does not keep it, value)). ``RecordError``
    for anything else than an answer of this contract."""
    wrong = RecordError("not an answer of the subscriptions read API")
    if not isinstance(body, dict) or not isinstance(body.get("applied_offset"), int):
        raise wrong
    listed = body.get("records")
    if not isinstance(listed, list):
        raise wrong
    found: dict[bytes, Stored] = {}
    for record in listed:
        offset = record.get("offset", -1) if isinstance(record, dict) else -1
        if not isinstance(record, dict) or not (offset is None or isinstance(offset, int)):
            raise wrong
        try:
            key = base64.b64decode(record["key"], validate=True)
            value = base64.b64decode(record["value"], validate=True)
        except (KeyError, TypeError, ValueError):
            raise wrong from None
        found[key] = (-1 if offset is None else offset, value)
    return body["applied_offset"], found


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
