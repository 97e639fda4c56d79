"""Sealed credentials (DESIGN.md section 4): how an OpenWhisk key travels inside a message.

A sealed credential is an authenticated encryption of the compact JSON
``{"key": "uuid:secret", "scope": ["/ns/trigger" | "/ns/*", ...], "iat": <epoch seconds>,
"exp": <epoch seconds>, "use": "subscription"}`` (``exp`` and ``use`` only when set).
Whoever holds the sealing keys (the ``produce``/``token``/``kafkaFeed`` web actions and the
firer) can open it; anyone else sees opaque text. The scope limits what the firer may fire with
the key inside: ``/ns/T`` is that one trigger, ``/ns/*`` every trigger of namespace ``ns``.

**Two token formats** (both canonical url-safe base64 with padding, told apart by the first
decoded byte; both open with the same sealing keys):

- **v2 (``0x02``), what every sealer writes:** ``0x02 | key id (4) | nonce (12) | AES-256-GCM-SIV
  ciphertext and tag`` of the JSON, the first 5 bytes as associated data (so the version and the
  key id are authenticated too). Each sealing key (a Fernet key, the same setting as before)
  yields, by HKDF-SHA256 with fixed labels, an AEAD key and a 4-byte key id; the AEAD object is
  built once per key, so opening costs about 2 µs, where Fernet builds an HMAC and an AES-CBC
  context per token (about 16 µs; with a credential sealed per message, opening was the firer's
  extra cost, issue 15). The nonce is random: GCM-SIV keeps a repeated nonce harmless except for
  telling two identical plaintexts apart, so the volume one key may seal is not bounded by
  nonce collisions as with plain GCM. The key id only selects the key to try (a fingerprint
  derived one-way, as ``deploy/sealing.py`` shows one); a token whose id names no key, or that
  does not authenticate, is refused. The length of the JSON is not padded (the trigger name it
  varies with travels in clear in the envelope anyway).
- **v1 (``0x80``): a Fernet token**, as sealed before v2. Every sealer wrote these until v2, so
  they keep opening (``MultiFernet``) for as long as they live. A sealer whose ``cryptography``
  cannot do AES-GCM-SIV (OpenSSL before 3.2) still writes v1.

Keys rotate as before: the first key seals, every key in the list opens (both formats), so a new
key is put first, and an old one is dropped once no live token needs it.

**Rolling v2 out.** Code from before v2 cannot open a v2 token (it refuses it as a bad credential
and dead-letters the message). So the openers are upgraded first: every firer (it opens envelope
credentials written by ``produce``, ``token`` and the routers), then the routers (they open the
subscriptions' credentials and re-seal them for envelopes), then the web actions (``produce``,
``token``, ``kafkaFeed``). Going back to code before v2 once v2 tokens exist refuses them: the
envelopes' within their lifetime (about 30 minutes; ``token``'s up to its ``ttl``), and the
subscription credentials that ``kafkaFeed`` sealed as v2, until those subscriptions are made anew.

**Lifetimes.** A credential is a bearer secret: whoever reads an envelope can replay it, so the
ones that travel in envelopes expire (``exp``): ``produce`` seals for ``DEFAULT_PRODUCE_TTL_S``
(the firer's retry window, 900 s, plus a margin for consumer lag), ``token`` for a ``ttl`` the
caller picks up to an operator maximum (``DEFAULT_TOKEN_TTL_S``, ``DEFAULT_TOKEN_MAX_TTL_S``), and
the router re-seals a subscription's credential into every envelope for ``ENVELOPE_TTL_S``
(``seal_for_envelope``). A subscription's own credential (``use: "subscription"``, sealed by
kafkaFeed) has no expiry: it lives as long as the subscription, only in the subscriptions topic,
and is opened only by the router. Credentials sealed before expiry existed carry no ``exp``;
they are accepted until the operator's cut-off (``LEGACY_CREDENTIALS_UNTIL``, ``legacy_until``;
unset: accepted), then refused as ``credential-expired``.

This module owns the token format and its checks: the API key shape (``uuid:64 alphanumerics``,
docs/openwhisk-api.md 1.2), scope entries, canonical base64 (so no two token strings open to the
same credential, and any one-character change is refused), and the optional maximum age. Every
failure to open is a ``CredentialError``; ``Sealer.authorize`` turns those, and a trigger outside
the scope, into the ``BadMessage`` the firer dead-letters. No key or secret ever appears in an
error message or a ``repr``.
"""

import base64
import binascii
import hashlib
import hmac
import json
import os
import re
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property, lru_cache
from typing import Any

from cryptography.exceptions import InvalidTag, UnsupportedAlgorithm
from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCMSIV
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from .envelope import TriggerName, check_namespace, parse_trigger_fqn
from .errors import BadMessage, ConfigError, CredentialError, Reason

WHOLE_NAMESPACE = "*"
SUBSCRIPTION_USE = "subscription"  # a kafkaFeed subscription's credential: the router's, never an envelope's
RETRY_MAX_AGE_S = 900  # the firer's default retry window (consumer settings retry_max_age_s)
LAG_MARGIN_S = 900  # time an envelope may wait in the topic before its first attempt
DEFAULT_PRODUCE_TTL_S = RETRY_MAX_AGE_S + LAG_MARGIN_S
ENVELOPE_TTL_S = RETRY_MAX_AGE_S + LAG_MARGIN_S  # the router's per-envelope credentials
DEFAULT_TOKEN_TTL_S = 24 * 3600
DEFAULT_TOKEN_MAX_TTL_S = 30 * 24 * 3600
LEGACY_CUTOFF_SETTING = "LEGACY_CREDENTIALS_UNTIL"
_OPENED_CACHE_SIZE = 4096
_GRANTS_CACHE_SIZE = 4096  # (key, scope) pairs: a producer seals the same pair into every message
# Opened contents: the tokens ``produce`` seals one per message differ (a fresh nonce each), but the
# content inside repeats (key, scope, iat and exp are whole seconds), so one second's tokens of a
# producer are one entry; reading that content again is most of a new token's cost (issue 15).
_CONTENTS_CACHE_SIZE = 4096  # as many as the opened tokens: it holds only what they share
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
    exp: int | None = None  # epoch seconds; None: sealed before expiry existed, or a subscription's
    use: str | None = None  # SUBSCRIPTION_USE for a kafkaFeed subscription's credential

    def __post_init__(self) -> None:
        scope, grants = _checked_grants(self.key, self.scope)
        object.__setattr__(self, "scope", scope)
        object.__setattr__(self, "_grants", grants)
        if not _epoch(self.iat):
            raise CredentialError("iat must be a non-negative integer (epoch seconds)")
        if self.exp is not None and not _epoch(self.exp):
            raise CredentialError("exp must be a non-negative integer (epoch seconds)")
        if self.use not in (None, SUBSCRIPTION_USE):
            raise CredentialError("unknown credential use")

    def content(self) -> dict[str, Any]:
        """The sealed JSON object (``exp`` and ``use`` only when set)."""
        content: dict[str, Any] = {"key": self.key, "scope": list(self.scope), "iat": self.iat}
        if self.exp is not None:
            content["exp"] = self.exp
        if self.use is not None:
            content["use"] = self.use
        return content

    @cached_property
    def _grants(self) -> frozenset[TriggerName]:
        return _grants_of(self.scope)

    def allows(self, trigger_fqn: str) -> bool:
        """Whether the scope covers the trigger ``/ns/name`` (an invalid name is never allowed)."""
        try:
            namespace, name = parse_trigger_fqn(trigger_fqn)
        except BadMessage:
            return False
        grants = self._grants
        return TriggerName(namespace, name) in grants or TriggerName(namespace, WHOLE_NAMESPACE) in grants


def _checked_grants(key: object, scope: object) -> tuple[tuple[str, ...], frozenset[TriggerName]]:
    """``check_api_key`` and ``check_scope``, in that order, and the grants of the scope.

    Every message sealed for one key and scope repeats them, so a checked pair of plain strings is
    remembered (a refused one raises, and is not); anything else is checked afresh."""
    if type(key) is str and isinstance(scope, list | tuple) and all(type(entry) is str for entry in scope):
        return _cached_grants(key, tuple(scope))
    return _grants_checked(key, scope)


def _grants_checked(key: object, scope: object) -> tuple[tuple[str, ...], frozenset[TriggerName]]:
    check_api_key(key)
    entries = check_scope(scope)
    return entries, _grants_of(entries)


_cached_grants = lru_cache(maxsize=_GRANTS_CACHE_SIZE)(_grants_checked)


def _grants_of(scope: tuple[str, ...]) -> frozenset[TriggerName]:
    return frozenset(parse_scope_entry(entry) for entry in scope)


def _epoch(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def parse_legacy_cutoff(text: str | None, variable: str = LEGACY_CUTOFF_SETTING) -> float | None:
    """The cut-off for credentials without ``exp``: an ISO 8601 time (with a zone, e.g.
    ``2026-03-01T00:00:00Z``) as epoch seconds; None (accepted forever) when unset or empty."""
    if text is None or not text.strip():
        return None
    try:
        when = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(variable, "must be an ISO 8601 time such as 2026-03-01T00:00:00Z") from None
    if when.tzinfo is None:
        raise ConfigError(variable, "must name its time zone, e.g. 2026-03-01T00:00:00Z")
    return when.timestamp()


def _fernet(key: str, variable: str, position: int) -> Fernet:
    try:
        return Fernet(key)
    except (TypeError, ValueError):
        raise ConfigError(variable, f"key #{position + 1} is not a Fernet key (32 url-safe base64 bytes)") from None


def web_auth_secret(sealing_keys: str) -> str:
    """The ``require-whisk-auth`` value of messagingWeb's web actions, which the ``messaging``
    forwarders present: an HMAC of a fixed label under the first (sealing) key, so every deploy
    with the same key list derives the same value (nothing more to keep) and it changes with a key
    rotation. It is bound on the shared package, so it is no secret from OpenWhisk users: it only
    keeps out callers without an OpenWhisk key; the HMAC reveals nothing of the sealing key."""
    first = parse_key_list(sealing_keys)[0]
    digest = hmac.new(base64.urlsafe_b64decode(first), b"messagingWeb require-whisk-auth v1", hashlib.sha256)
    return "mw-" + base64.urlsafe_b64encode(digest.digest()).decode("ascii").rstrip("=")


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


_FROM_URLSAFE = bytes.maketrans(b"-_", b"+/")
_TO_URLSAFE = bytes.maketrans(b"+/", b"-_")


def _token_bytes(token: object) -> tuple[bytes, bytes]:
    """The token as ascii bytes and decoded, if it is canonical url-safe base64; else refused."""
    if not isinstance(token, str) or not token:
        raise CredentialError("the credential is not a non-empty string")
    try:  # base64.urlsafe_b64decode and _b64encode without their wrappers' checks (a token per message)
        raw = token.encode("ascii")
        decoded = binascii.a2b_base64(raw.translate(_FROM_URLSAFE))
        canonical = binascii.b2a_base64(decoded, newline=False).translate(_TO_URLSAFE) == raw
    except (UnicodeEncodeError, binascii.Error, ValueError):
        canonical = False
    if not canonical:
        raise CredentialError("the credential is not a sealed token")
    return raw, decoded


V2 = 0x02  # the first byte of a v2 token (a Fernet token's is 0x80)
_V2_BYTE = bytes([V2])
_V2_HEADER = 5  # version and key id: the associated data
_V2_NONCE = 12
_V2_KEY_INFO = b"messaging_lib credential v2 AES-256-GCM-SIV key"
_V2_ID_INFO = b"messaging_lib credential v2 key id"


def _derived(key: str, info: bytes, length: int) -> bytes:
    """A value derived one-way from a sealing key (HKDF-SHA256, no salt, a fixed label per use),
    so the AEAD key is never the Fernet key's bytes themselves and the key id reveals neither."""
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=None, info=info).derive(base64.urlsafe_b64decode(key))


@dataclass(frozen=True)
class _AeadKey:
    """One sealing key's v2 form: its id and its AEAD object, built once (building one per token
    would cost more than the decryption itself)."""

    key_id: bytes = field(repr=False)
    aead: AESGCMSIV = field(repr=False)

    @classmethod
    def of(cls, key: str) -> "_AeadKey | None":
        """None where this ``cryptography``'s OpenSSL has no AES-GCM-SIV (the sealer writes v1)."""
        try:
            aead = AESGCMSIV(_derived(key, _V2_KEY_INFO, 32))
            aead.encrypt(bytes(_V2_NONCE), b"probe", b"")  # some builds refuse only when used (43.x: never b"")
        except UnsupportedAlgorithm:
            return None
        return cls(_derived(key, _V2_ID_INFO, 4), aead)

    def seal(self, plaintext: bytes) -> bytes:
        header = bytes([V2]) + self.key_id
        nonce = os.urandom(_V2_NONCE)
        return header + nonce + self.aead.encrypt(nonce, plaintext, header)


def _open_v2(keys: list[_AeadKey], data: bytes) -> bytes:
    """The plaintext of a decoded v2 token under the key its id names; ``InvalidToken`` if no key
    has that id or the token does not authenticate (anything changed, cut or added)."""
    header, nonce, sealed = data[:_V2_HEADER], data[_V2_HEADER:_V2_HEADER + _V2_NONCE], data[_V2_HEADER + _V2_NONCE:]
    if len(nonce) != _V2_NONCE:
        raise InvalidToken
    key_id = header[1:]
    for key in keys:
        if key.key_id == key_id:  # not secret: a mismatch says only that another key sealed it
            try:
                return key.aead.decrypt(nonce, sealed, header)
            except (InvalidTag, ValueError):  # ValueError: cryptography 43.x on a token of no ciphertext
                continue
    raise InvalidToken


def _credential_from(plaintext: bytes) -> Credential:
    try:
        content: Any = json.loads(plaintext.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise CredentialError("the sealed content is not a credential") from None
    if not isinstance(content, dict):
        raise CredentialError("the sealed content is not a credential")
    get: Callable[[str], Any] = content.get  # checked by Credential itself
    return Credential(get("key"), get("scope"), get("iat"), get("exp"), get("use"))


class Sealer:
    """Seals (v2) and opens (v2 and v1) credentials with a list of Fernet keys (first seals, all open).

    ``clock`` returns epoch seconds; tests inject one to control ``iat``, ``exp`` and ages.
    ``legacy_until`` (epoch seconds, see ``parse_legacy_cutoff``): from then on an envelope's
    credential without ``exp`` is refused. ``subscription_credentials_fire``: whether an envelope
    may carry a subscription's own credential (True only until the router writes
    ``seal_for_envelope`` credentials; then False, so a subscription credential fires nothing).
    Opening is cached (it is the firer's main CPU cost and a trigger's messages repeat their
    token); every check that depends on the time is made again on every call.
    """

    def __init__(
        self, keys: list[str], *, clock: Callable[[], float] = time.time, variable: str = "sealing keys",
        legacy_until: float | None = None, subscription_credentials_fire: bool = True,
    ) -> None:
        if isinstance(keys, str | bytes) or not keys:
            raise ConfigError(variable, "needs a non-empty list of Fernet keys")
        self._fernet = MultiFernet([_fernet(key, variable, position) for position, key in enumerate(keys)])
        aead_keys = [_AeadKey.of(key) for key in keys]
        self._aead_keys = [key for key in aead_keys if key is not None]
        self._seals_v2 = aead_keys[0] is not None
        self._key_count = len(keys)
        self._clock = clock
        self._legacy_until = legacy_until
        self._subscription_credentials_fire = subscription_credentials_fire
        self._opened: OrderedDict[str, Credential] = OrderedDict()
        self._contents: OrderedDict[bytes, Credential] = OrderedDict()  # plaintext -> its credential

    def __repr__(self) -> str:
        return f"Sealer(<{self._key_count} keys>)"

    def seal(self, api_key: str, scope: list[str], *, ttl_s: float | None = None) -> str:
        """Seal ``api_key`` for ``scope``, issued now, expiring after ``ttl_s`` (None: no ``exp``).
        ``CredentialError`` on a bad key, scope or lifetime."""
        return self._seal(api_key, scope, ttl_s, None)

    def seal_subscription(self, api_key: str, trigger_fqn: str) -> str:
        """A kafkaFeed subscription's credential: that one trigger, no expiry, opened only by the
        router (``seal_for_envelope``); an envelope carrying it is refused once the router re-seals."""
        return self._seal(api_key, [trigger_fqn], None, SUBSCRIPTION_USE)

    def seal_for_envelope(self, credential: str, trigger_fqn: str, *, ttl_s: float = ENVELOPE_TTL_S) -> str:
        """The router's credential for one envelope of ``trigger_fqn``: the key inside the
        subscription's ``credential``, scoped to that trigger, expiring after ``ttl_s`` (never
        later than ``credential`` itself). Credentials sealed before subscriptions were marked
        are accepted whatever the legacy cut-off (they never left the subscriptions topic).

        Raises only ``BadMessage`` (``bad-credential``, ``credential-expired``,
        ``credential-out-of-scope``): the router disables or dead-letters that subscription alone.
        """
        opened = self._checked(credential, trigger_fqn, max_age_s=None, legacy_cutoff=False)
        ttl = ttl_s if opened.exp is None else min(ttl_s, opened.exp - self._clock())
        return self._seal(opened.key, [trigger_fqn], max(ttl, 1), None)

    def _seal(self, api_key: str, scope: list[str], ttl_s: float | None, use: str | None) -> str:
        if ttl_s is not None and not ttl_s > 0:
            raise CredentialError("a credential's lifetime must be more than 0 s")
        iat = int(self._clock())
        credential = Credential(api_key, check_scope(scope), iat, None if ttl_s is None else iat + int(ttl_s), use)
        plaintext = json.dumps(credential.content(), separators=(",", ":")).encode("utf-8")
        if self._seals_v2:
            return base64.urlsafe_b64encode(self._aead_keys[0].seal(plaintext)).decode("ascii")
        return self._fernet.encrypt_at_time(plaintext, credential.iat).decode("ascii")

    def open(self, token: str, *, max_age_s: float | None = None) -> Credential:
        """Open a sealed credential and check its ``exp``; with ``max_age_s``, also refuse one
        issued longer ago. (The legacy cut-off and the use are ``authorize``'s checks.)

        Raises only ``CredentialError`` (reason ``credential-expired`` for an expired or old token).
        """
        credential = self._decrypted(token)
        now = self._clock()
        if credential.exp is not None and now >= credential.exp:
            raise CredentialError("the credential has expired", reason=Reason.CREDENTIAL_EXPIRED)
        if max_age_s is not None:
            if credential.iat > now + MAX_CLOCK_SKEW_S:
                raise CredentialError("the credential was issued in the future")
            if now - credential.iat > max_age_s:
                raise CredentialError(f"the credential is older than {max_age_s:g} s", reason=Reason.CREDENTIAL_EXPIRED)
        return credential

    def authorize(self, token: str, trigger_fqn: str, *, max_age_s: float | None = None) -> Credential:
        """Open an envelope's ``token`` and check it may fire ``trigger_fqn`` now, as the firer does.

        Raises only ``BadMessage``: ``bad-credential``, ``credential-expired`` (past ``exp``, or
        without ``exp`` after the legacy cut-off) or ``credential-out-of-scope``.
        """
        credential = self._checked(token, trigger_fqn, max_age_s=max_age_s, legacy_cutoff=True)
        if credential.use == SUBSCRIPTION_USE and not self._subscription_credentials_fire:
            raise BadMessage(Reason.BAD_CREDENTIAL, "a subscription's credential cannot fire from an envelope")
        return credential

    def _checked(self, token: str, trigger_fqn: str, *, max_age_s: float | None, legacy_cutoff: bool) -> Credential:
        try:
            credential = self.open(token, max_age_s=max_age_s)
        except CredentialError as exc:
            raise BadMessage(exc.reason, exc.detail) from None
        if legacy_cutoff and credential.exp is None and credential.use is None and self._legacy_until is not None \
                and self._clock() >= self._legacy_until:
            raise BadMessage(Reason.CREDENTIAL_EXPIRED,
                             f"credentials without an expiry are refused since {LEGACY_CUTOFF_SETTING}")
        if not credential.allows(trigger_fqn):
            raise BadMessage(Reason.CREDENTIAL_OUT_OF_SCOPE, f"the credential does not cover {trigger_fqn}")
        return credential

    def _credential(self, plaintext: bytes) -> Credential:
        """The credential of an opened content: a ``Credential`` is immutable and all of it is in
        the content, so equal contents (tokens sealed for one key and scope in one second) share one."""
        credential = self._contents.get(plaintext)
        if credential is not None:
            self._contents.move_to_end(plaintext)
            return credential
        credential = self._contents[plaintext] = _credential_from(plaintext)
        if len(self._contents) > _CONTENTS_CACHE_SIZE:
            self._contents.popitem(last=False)
        return credential

    def _decrypted(self, token: str) -> Credential:
        """The credential inside ``token`` (cached: opening is the firer's main CPU cost)."""
        cached = self._opened.get(token) if isinstance(token, str) else None
        if cached is not None:
            self._opened.move_to_end(token)
            return cached
        raw, decoded = _token_bytes(token)
        try:
            plaintext = _open_v2(self._aead_keys, decoded) if decoded[:1] == _V2_BYTE else self._fernet.decrypt(raw)
        except InvalidToken:
            raise CredentialError("the credential does not open with any sealing key") from None
        credential = self._credential(plaintext)
        self._opened[token] = credential
        if len(self._opened) > _OPENED_CACHE_SIZE:
            self._opened.popitem(last=False)
        return credential
