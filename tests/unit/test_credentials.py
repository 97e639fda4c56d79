"""Sealed credentials: round trips, tamper resistance, key rotation, scopes, ages, key shapes."""

import base64
import json
import string
from collections.abc import Callable
from typing import Any

import pytest
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCMSIV
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from messaging_lib import credentials
from messaging_lib.credentials import (
    MAX_CLOCK_SKEW_S,
    Credential,
    Sealer,
    check_api_key,
    check_scope,
    generate_key,
    namespace_scope,
    parse_key_list,
    parse_legacy_cutoff,
)
from messaging_lib.envelope import ENTITY_NAME_RE, trigger_fqn
from messaging_lib.errors import BadMessage, ConfigError, CredentialError, Reason

FAST = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

GUEST_KEY = "23bc46b1-71f6-4ed5-8c54-816aa4f8c502:123zO3xZCLrMN6v2BKK1dXYFpXlPkccOFqm12CdAsMgRU4VrNZ9lyGVCGuMDGIwP"
SYSTEM_KEY = "789c46b1-71f6-4ed5-8c54-816aa4f8c502:abczO3xZCLrMN6v2BKK1dXYFpXlPkccOFqm12CdAsMgRU4VrNZ9lyGVCGuMDGIwP"
OLD, NEW, OTHER = generate_key(), generate_key(), generate_key()
NOW = 1_800_000_000


class Clock:
    """A settable clock for ``Sealer`` (epoch seconds)."""

    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def sealer(*keys: str, now: float = NOW) -> Sealer:
    return Sealer(list(keys or (NEW,)), clock=Clock(now))


def v1_seal(api_key: str, scope: list[str], key: str = NEW, iat: int = NOW, exp: int | None = None) -> str:
    """A v1 token (Fernet), exactly as every sealer wrote them before v2."""
    content: dict[str, Any] = {"key": api_key, "scope": scope, "iat": iat}
    if exp is not None:
        content["exp"] = exp
    plaintext = json.dumps(content, separators=(",", ":")).encode()
    return Fernet(key).encrypt_at_time(plaintext, iat).decode()


def derived(key: str, info: bytes, length: int) -> bytes:
    """The v2 derivation, written out here from the module docstring (HKDF-SHA256, no salt)."""
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=None, info=info).derive(base64.urlsafe_b64decode(key))


def v2_raw(plaintext: bytes, key: str = NEW, version: int = 0x02, nonce: bytes = bytes(range(12))) -> str:
    """A v2 token of any plaintext (foreign content, other versions) sealed as the docstring says."""
    header = bytes([version]) + derived(key, b"messaging_lib credential v2 key id", 4)
    aead = AESGCMSIV(derived(key, b"messaging_lib credential v2 AES-256-GCM-SIV key", 32))
    return base64.urlsafe_b64encode(header + nonce + aead.encrypt(nonce, plaintext, header)).decode()


def v2_seal(api_key: str, scope: list[str], key: str = NEW) -> str:
    return sealer(key).seal(api_key, scope)


FORMATS: dict[str, Callable[..., str]] = {"v2": v2_seal, "v1": v1_seal}
RAW_FORMATS: dict[str, Callable[[bytes], str]] = {"v2": v2_raw, "v1": lambda raw: Fernet(NEW).encrypt(raw).decode()}


# --- strategies --------------------------------------------------------------------------------

names = st.from_regex(ENTITY_NAME_RE, fullmatch=True)
namespaces = names.filter(lambda name: name != "_")
fqns = st.builds(trigger_fqn, namespaces, names)
scope_entries = fqns | namespaces.map(namespace_scope)
scopes = st.lists(scope_entries, min_size=1, max_size=5)
api_keys = st.builds(
    "{}:{}".format, st.uuids().map(str), st.text(string.ascii_letters + string.digits, min_size=64, max_size=64)
)


# --- round trips and tampering -----------------------------------------------------------------


@FAST
@given(api_keys, scopes)
def test_seal_open_round_trip(api_key: str, scope: list[str]) -> None:
    token = sealer().seal(api_key, scope)
    assert api_key not in token
    assert sealer().open(token) == Credential(api_key, tuple(scope), NOW)


def test_the_token_is_v2_under_the_first_key_and_the_iat_is_the_clock() -> None:
    token = sealer(NEW, OLD, now=NOW + 0.9).seal(GUEST_KEY, ["/guest/T"])
    raw = base64.urlsafe_b64decode(token)
    header, nonce, sealed = raw[:5], raw[5:17], raw[17:]
    assert header == b"\x02" + derived(NEW, b"messaging_lib credential v2 key id", 4)
    aead = AESGCMSIV(derived(NEW, b"messaging_lib credential v2 AES-256-GCM-SIV key", 32))
    assert json.loads(aead.decrypt(nonce, sealed, header)) == {"key": GUEST_KEY, "scope": ["/guest/T"], "iat": NOW}
    assert GUEST_KEY.encode() not in raw and b"/guest/T" not in raw
    assert sealer().open(token).iat == NOW


def test_a_v1_fernet_token_opens_to_the_same_credential() -> None:
    token = v1_seal(GUEST_KEY, ["/guest/T"])
    assert Fernet(NEW).extract_timestamp(token.encode()) == NOW
    assert sealer().open(token) == sealer().open(sealer().seal(GUEST_KEY, ["/guest/T"])) \
        == Credential(GUEST_KEY, ("/guest/T",), NOW)
    assert sealer().authorize(token, "/guest/T").key == GUEST_KEY


def test_an_expired_v1_token_is_refused_as_expired() -> None:
    token = v1_seal(GUEST_KEY, ["/guest/T"], exp=NOW + 60)
    assert sealer(now=NOW + 59).authorize(token, "/guest/T").exp == NOW + 60
    with pytest.raises(BadMessage) as info:
        sealer(now=NOW + 60).authorize(token, "/guest/T")
    assert info.value.reason == Reason.CREDENTIAL_EXPIRED
    with pytest.raises(BadMessage) as info:
        sealer().authorize(token, "/guest/U")
    assert info.value.reason == Reason.CREDENTIAL_OUT_OF_SCOPE


def test_two_seals_of_one_credential_differ() -> None:
    """A random nonce per token: equal credentials do not show as equal tokens."""
    assert sealer().seal(GUEST_KEY, ["/guest/T"]) != sealer().seal(GUEST_KEY, ["/guest/T"])


def test_a_sealer_without_aes_gcm_siv_writes_v1_that_every_sealer_opens(monkeypatch: pytest.MonkeyPatch) -> None:
    class Unsupported:
        def __init__(self, key: bytes) -> None:
            raise UnsupportedAlgorithm("no AES-GCM-SIV in this OpenSSL")
    monkeypatch.setattr(credentials, "AESGCMSIV", Unsupported)
    token = sealer().seal(GUEST_KEY, ["/guest/T"])
    assert base64.urlsafe_b64decode(token)[:1] == b"\x80"
    assert sealer().open(token).key == GUEST_KEY
    monkeypatch.undo()
    assert sealer().open(token).key == GUEST_KEY


@pytest.mark.parametrize("version", [0x00, 0x01, 0x03, 0x80, 0x82, 0xFF])
def test_a_well_sealed_token_of_another_version_is_refused(version: int) -> None:
    content = json.dumps({"key": GUEST_KEY, "scope": ["/guest/T"], "iat": NOW}).encode()
    assert sealer().open(v2_raw(content)).key == GUEST_KEY  # the same, as version 2, opens
    with pytest.raises(CredentialError):
        sealer().open(v2_raw(content, version=version))


def test_a_v2_token_opens_only_under_the_key_its_id_names() -> None:
    content = json.dumps({"key": GUEST_KEY, "scope": ["/guest/T"], "iat": NOW}).encode()
    raw = bytearray(base64.urlsafe_b64decode(v2_raw(content, key=NEW)))
    raw[1:5] = derived(OLD, b"messaging_lib credential v2 key id", 4)  # names OLD, sealed under NEW
    with pytest.raises(CredentialError):
        sealer(NEW, OLD).open(base64.urlsafe_b64encode(bytes(raw)).decode())


@FUZZ
@given(st.data(), st.sampled_from(sorted(FORMATS)))
def test_any_single_character_change_is_refused(data: st.DataObject, form: str) -> None:
    token = FORMATS[form](GUEST_KEY, ["/guest/T"])
    position = data.draw(st.integers(0, len(token) - 1), label="position")
    replacement = data.draw(
        (st.sampled_from(string.ascii_letters + string.digits + "-_=+/ ") | st.characters()).filter(
            lambda char: char != token[position]
        ),
        label="replacement",
    )
    tampered = token[:position] + replacement + token[position + 1 :]
    with pytest.raises(CredentialError):
        sealer().open(tampered)


@FUZZ
@given(st.data(), st.sampled_from(sorted(FORMATS)))
def test_any_single_byte_change_of_the_decoded_token_is_refused(data: st.DataObject, form: str) -> None:
    raw = bytearray(base64.urlsafe_b64decode(FORMATS[form](GUEST_KEY, ["/guest/*"])))
    position = data.draw(st.integers(0, len(raw) - 1), label="position")
    raw[position] ^= data.draw(st.integers(1, 255), label="xor")
    with pytest.raises(CredentialError):
        sealer().open(base64.urlsafe_b64encode(bytes(raw)).decode())


@pytest.mark.parametrize("form", sorted(FORMATS))
def test_cutting_or_extending_a_token_is_refused(form: str) -> None:
    token = FORMATS[form](GUEST_KEY, ["/guest/T"])
    raw = base64.urlsafe_b64decode(token)
    for cut in range(len(raw)):  # every shorter prefix of the decoded token, re-encoded canonically
        with pytest.raises(CredentialError):
            sealer().open(base64.urlsafe_b64encode(raw[:cut]).decode())
    for extra in (b"\x00", bytes(16), raw[-16:]):
        with pytest.raises(CredentialError):
            sealer().open(base64.urlsafe_b64encode(raw + extra).decode())
    for changed in (token[:-1], token[:-4], token + "=", token + "AAAA", " " + token, token + "\n", token[4:]):
        with pytest.raises(CredentialError):
            sealer().open(changed)


@FUZZ
@given(st.text(max_size=300) | st.binary(max_size=200).map(lambda raw: base64.urlsafe_b64encode(raw).decode()))
def test_garbage_is_refused_with_credential_error_only(token: str) -> None:
    with pytest.raises(CredentialError):
        sealer().open(token)


@pytest.mark.parametrize("token", [None, 5, b"gAAAAA", ["x"], ""])
def test_non_string_tokens_are_refused(token: Any) -> None:
    with pytest.raises(CredentialError):
        sealer().open(token)


@pytest.mark.parametrize(
    "plaintext",
    [
        b"not json",
        b"\xff",
        b"[1, 2]",
        b'{"key": "x", "scope": ["/guest/T"], "iat": 1}',
        b'{"key": "' + GUEST_KEY.encode() + b'", "scope": [], "iat": 1}',
        b'{"key": "' + GUEST_KEY.encode() + b'", "scope": "/guest/T", "iat": 1}',
        b'{"key": "' + GUEST_KEY.encode() + b'", "scope": ["/guest/T"], "iat": "1"}',
        b'{"key": "' + GUEST_KEY.encode() + b'", "scope": ["/guest/T"], "iat": true}',
        b'{"key": "' + GUEST_KEY.encode() + b'", "scope": ["/guest/T"]}',
    ],
)
@pytest.mark.parametrize("form", sorted(RAW_FORMATS))
def test_authentic_tokens_with_foreign_content_are_refused(plaintext: bytes, form: str) -> None:
    token = RAW_FORMATS[form](plaintext)
    with pytest.raises(CredentialError):
        sealer().open(token)


@pytest.mark.parametrize("form", sorted(RAW_FORMATS))
def test_extra_fields_in_the_content_are_ignored(form: str) -> None:
    plaintext = b'{"key": "' + GUEST_KEY.encode() + b'", "scope": ["/guest/T"], "iat": 7, "v": 2}'
    assert sealer().open(RAW_FORMATS[form](plaintext)) == Credential(GUEST_KEY, ("/guest/T",), 7)


# --- key rotation ------------------------------------------------------------------------------


@FAST
@given(api_keys, scopes, st.sampled_from(sorted(FORMATS)))
def test_a_token_sealed_with_an_old_key_opens_after_rotation(api_key: str, scope: list[str], form: str) -> None:
    old_token = FORMATS[form](api_key, scope, OLD)
    rotated = sealer(NEW, OLD)
    assert rotated.open(old_token).key == api_key
    new_token = rotated.seal(api_key, scope)
    assert sealer(NEW).open(new_token).key == api_key  # the first key seals
    with pytest.raises(CredentialError):
        sealer(OLD).open(new_token)
    with pytest.raises(CredentialError):
        sealer(NEW).open(old_token)  # the old key was retired
    with pytest.raises(CredentialError):
        sealer(OTHER).open(old_token)


# --- scopes ------------------------------------------------------------------------------------


@FAST
@given(namespaces, namespaces, names, names)
def test_a_namespace_scope_allows_every_trigger_of_that_namespace_only(
    namespace: str, other: str, name: str, other_name: str
) -> None:
    credential = Credential(GUEST_KEY, (namespace_scope(namespace),), NOW)
    assert credential.allows(trigger_fqn(namespace, name))
    assert credential.allows(trigger_fqn(namespace, other_name))
    assert credential.allows(trigger_fqn(other, name)) == (other == namespace)


@FAST
@given(namespaces, names, namespaces, names)
def test_an_exact_scope_allows_exactly_one_trigger(namespace: str, name: str, other_ns: str, other_name: str) -> None:
    credential = Credential(GUEST_KEY, (trigger_fqn(namespace, name),), NOW)
    assert credential.allows(trigger_fqn(namespace, name))
    assert credential.allows(trigger_fqn(other_ns, other_name)) == ((other_ns, other_name) == (namespace, name))


@FAST
@given(scopes, fqns)
def test_a_scope_list_allows_the_union_of_its_entries(scope: list[str], fqn: str) -> None:
    credential = Credential(GUEST_KEY, tuple(scope), NOW)
    each = [Credential(GUEST_KEY, (entry,), NOW).allows(fqn) for entry in scope]
    assert credential.allows(fqn) == any(each)
    assert all(credential.allows(entry) for entry in scope if not entry.endswith("/*"))


@pytest.mark.parametrize("fqn", ["/guest/*", "guest/T", "/_/T", "T", "/guest/T/x", "", "/guest/T*"])
def test_names_that_are_not_triggers_are_never_allowed(fqn: str) -> None:
    credential = Credential(GUEST_KEY, ("/guest/*", "/guest/T"), NOW)
    assert not credential.allows(fqn)


@pytest.mark.parametrize(
    "scope",
    [
        [],
        "/guest/T",
        None,
        [""],
        ["/guest"],
        ["guest/T"],
        ["/_/T"],
        ["/_/*"],
        ["/guest/T/x"],
        ["/guest/*x"],
        ["/*/*"],
        ["/guest/**"],
        ["/guest/T", 5],
        ["/guest/T "],
    ],
)
def test_bad_scopes_are_refused(scope: Any) -> None:
    with pytest.raises(CredentialError):
        check_scope(scope)
    with pytest.raises(CredentialError):
        sealer().seal(GUEST_KEY, scope)


# --- API key shapes ----------------------------------------------------------------------------


@pytest.mark.parametrize("api_key", [GUEST_KEY, SYSTEM_KEY, GUEST_KEY.upper()])
def test_openwhisk_keys_are_accepted(api_key: str) -> None:
    assert check_api_key(api_key) == api_key


@pytest.mark.parametrize(
    "api_key",
    [
        "",
        GUEST_KEY.replace(":", ""),
        GUEST_KEY[:-1],
        GUEST_KEY + "x",
        GUEST_KEY + "\n",
        "x" + GUEST_KEY[1:],  # not hex in the uuid
        GUEST_KEY[:37] + "-" + GUEST_KEY[38:],  # not alphanumeric in the secret
        GUEST_KEY.replace("-", ""),
        "guest:" + GUEST_KEY.split(":")[1],
        None,
        5,
    ],
)
def test_other_key_shapes_are_refused_without_echoing_them(api_key: Any) -> None:
    with pytest.raises(CredentialError) as info:
        sealer().seal(api_key, ["/guest/T"])
    secret = GUEST_KEY.split(":")[1]
    assert secret[:20] not in str(info.value)
    with pytest.raises(CredentialError):
        check_api_key(api_key)


def test_the_key_is_never_in_a_repr() -> None:
    credential = sealer().open(sealer().seal(GUEST_KEY, ["/guest/T"]))
    assert GUEST_KEY.split(":")[1] not in repr(credential)
    assert GUEST_KEY.split(":")[1] not in str(credential)
    assert NEW not in repr(sealer(NEW))


# --- age ---------------------------------------------------------------------------------------


def test_max_age() -> None:
    token = sealer(now=NOW).seal(GUEST_KEY, ["/guest/T"])
    assert sealer(now=NOW + 3600).open(token, max_age_s=3600).iat == NOW
    assert sealer(now=NOW + 10**9).open(token).iat == NOW  # no maximum age by default
    with pytest.raises(CredentialError) as info:
        sealer(now=NOW + 3601).open(token, max_age_s=3600)
    assert info.value.reason == Reason.CREDENTIAL_EXPIRED
    assert sealer(now=NOW - MAX_CLOCK_SKEW_S).open(token, max_age_s=10).iat == NOW
    with pytest.raises(CredentialError) as info:
        sealer(now=NOW - MAX_CLOCK_SKEW_S - 1).open(token, max_age_s=10)
    assert info.value.reason == Reason.BAD_CREDENTIAL


# --- authorize: what the firer calls -----------------------------------------------------------


def test_authorize_reasons() -> None:
    token = sealer().seal(GUEST_KEY, ["/guest/T"])
    assert sealer().authorize(token, "/guest/T").key == GUEST_KEY
    cases = [
        (lambda: sealer().authorize(token, "/guest/U"), Reason.CREDENTIAL_OUT_OF_SCOPE),
        (lambda: sealer().authorize(token, "/other/T"), Reason.CREDENTIAL_OUT_OF_SCOPE),
        (lambda: sealer(OTHER).authorize(token, "/guest/T"), Reason.BAD_CREDENTIAL),
        (lambda: sealer().authorize(token[:-2], "/guest/T"), Reason.BAD_CREDENTIAL),
        (lambda: sealer(now=NOW + 100).authorize(token, "/guest/T", max_age_s=10), Reason.CREDENTIAL_EXPIRED),
    ]
    for call, expected in cases:
        with pytest.raises(BadMessage) as info:
            call()
        assert info.value.reason == expected
        assert GUEST_KEY.split(":")[1] not in str(info.value)


# --- sealing keys as settings ------------------------------------------------------------------


def test_parse_key_list() -> None:
    assert parse_key_list(f" {NEW} ,{OLD},, ") == [NEW, OLD]
    for bad in ("", " , ", f"{NEW},not-a-key", "x" * 44):
        with pytest.raises(ConfigError) as info:
            parse_key_list(bad, "MESSAGING_SEALING_KEYS")
        assert info.value.variable == "MESSAGING_SEALING_KEYS"
        assert "not-a-key" not in str(info.value)


@pytest.mark.parametrize("keys", [[], NEW, ["short"], [NEW, None]])
def test_a_sealer_needs_a_list_of_fernet_keys(keys: Any) -> None:
    with pytest.raises(ConfigError):
        Sealer(keys)


def test_generated_keys_are_distinct_fernet_keys() -> None:
    first, second = generate_key(), generate_key()
    assert first != second
    Fernet(first)


# --- expiry (issue 11) ---------------------------------------------------------------------------


def test_a_credential_with_a_lifetime_carries_exp_and_expires_with_its_own_reason() -> None:
    token = sealer(now=NOW).seal(GUEST_KEY, ["/guest/T"], ttl_s=1800)
    assert sealer(now=NOW + 1799).authorize(token, "/guest/T").exp == NOW + 1800
    with pytest.raises(BadMessage) as info:
        sealer(now=NOW + 1800).authorize(token, "/guest/T")
    assert (info.value.reason, info.value.detail) == (Reason.CREDENTIAL_EXPIRED, "the credential has expired")
    assert str(info.value) == "credential-expired: the credential has expired"


def test_an_expired_credential_is_refused_even_after_it_was_opened_once() -> None:
    clock = Clock(NOW)
    opener = Sealer([NEW], clock=clock)
    token = opener.seal(GUEST_KEY, ["/guest/T"], ttl_s=10)
    assert opener.authorize(token, "/guest/T").key == GUEST_KEY
    clock.now = NOW + 10
    with pytest.raises(BadMessage) as info:
        opener.authorize(token, "/guest/T")
    assert info.value.reason == Reason.CREDENTIAL_EXPIRED


def test_tokens_sealed_per_message_with_one_content_share_one_opened_credential_and_each_is_checked() -> None:
    """A producer seals a token per message (a fresh nonce each): those of one second carry the same
    content, opened once; a different content is its own, and expiry and scope are checked per call."""
    clock = Clock(NOW)
    opener = Sealer([NEW], clock=clock)
    first, second = (opener.seal(GUEST_KEY, ["/guest/T"], ttl_s=10) for _ in range(2))
    assert first != second
    assert opener.authorize(first, "/guest/T") is opener.authorize(second, "/guest/T")
    clock.now = NOW + 1
    later = opener.seal(GUEST_KEY, ["/guest/T"], ttl_s=10)
    assert opener.authorize(later, "/guest/T").iat == NOW + 1
    with pytest.raises(BadMessage) as info:
        opener.authorize(second, "/guest/other")
    assert info.value.reason == Reason.CREDENTIAL_OUT_OF_SCOPE
    clock.now = NOW + 10
    with pytest.raises(BadMessage) as info:
        opener.authorize(first, "/guest/T")
    assert info.value.reason == Reason.CREDENTIAL_EXPIRED


@pytest.mark.parametrize("ttl", [0, -5])
def test_a_lifetime_must_be_positive(ttl: float) -> None:
    with pytest.raises(CredentialError, match="lifetime"):
        sealer().seal(GUEST_KEY, ["/guest/T"], ttl_s=ttl)


def test_credentials_without_exp_are_accepted_until_the_legacy_cutoff() -> None:
    legacy = sealer(now=NOW - 10**6).seal(GUEST_KEY, ["/guest/T"])
    assert Sealer([NEW], clock=Clock(NOW)).authorize(legacy, "/guest/T").exp is None  # no cut-off: accepted
    cutoff = parse_legacy_cutoff("2027-01-15T08:00:00Z")
    assert cutoff == NOW
    assert Sealer([NEW], clock=Clock(NOW - 1), legacy_until=cutoff).authorize(legacy, "/guest/T").key == GUEST_KEY
    with pytest.raises(BadMessage) as info:
        Sealer([NEW], clock=Clock(NOW), legacy_until=cutoff).authorize(legacy, "/guest/T")
    assert str(info.value) == "credential-expired: credentials without an expiry are refused since " \
                              "LEGACY_CREDENTIALS_UNTIL"


@pytest.mark.parametrize("text", ["", "  ", None])
def test_no_cutoff_when_unset(text: str | None) -> None:
    assert parse_legacy_cutoff(text) is None


@pytest.mark.parametrize("text, detail", [
    ("tomorrow", "must be an ISO 8601 time such as 2026-03-01T00:00:00Z"),
    ("2026-03-01T00:00:00", "must name its time zone, e.g. 2026-03-01T00:00:00Z"),
])
def test_a_bad_cutoff_names_the_setting(text: str, detail: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_legacy_cutoff(text)
    assert str(info.value) == f"LEGACY_CREDENTIALS_UNTIL: {detail}"


def test_the_router_reseals_a_subscription_credential_short_lived_for_one_trigger() -> None:
    clock = Clock(NOW)
    router = Sealer([NEW], clock=clock, legacy_until=NOW - 1, subscription_credentials_fire=False)
    subscription = router.seal_subscription(GUEST_KEY, "/guest/T")
    assert router.open(subscription).use == "subscription"
    with pytest.raises(BadMessage) as info:
        router.authorize(subscription, "/guest/T")
    assert (info.value.reason, info.value.detail) == (
        Reason.BAD_CREDENTIAL, "a subscription's credential cannot fire from an envelope")
    clock.now = NOW + 10**7  # subscriptions do not expire
    for_envelope = router.seal_for_envelope(subscription, "/guest/T")
    opened = router.authorize(for_envelope, "/guest/T")
    assert (opened.key, opened.scope, opened.exp, opened.use) == (GUEST_KEY, ("/guest/T",), NOW + 10**7 + 1800, None)
    with pytest.raises(BadMessage) as info:
        router.seal_for_envelope(subscription, "/guest/U")
    assert info.value.reason == Reason.CREDENTIAL_OUT_OF_SCOPE


def test_the_router_accepts_old_subscription_credentials_and_never_extends_a_lifetime() -> None:
    old = sealer(now=NOW - 10**6).seal(GUEST_KEY, ["/guest/*"])
    router = Sealer([NEW], clock=Clock(NOW), legacy_until=NOW - 1)
    assert router.open(router.seal_for_envelope(old, "/guest/T", ttl_s=60)).exp == NOW + 60
    short = Sealer([NEW], clock=Clock(NOW)).seal(GUEST_KEY, ["/guest/T"], ttl_s=30)
    assert router.open(router.seal_for_envelope(short, "/guest/T", ttl_s=600)).exp == NOW + 30


def test_a_subscription_credential_fires_only_while_the_router_does_not_reseal() -> None:
    subscription = sealer().seal_subscription(GUEST_KEY, "/guest/T")
    assert sealer().authorize(subscription, "/guest/T").use == "subscription"  # the default, for now


# --- checked (key, scope) pairs are remembered: the same answers as checking afresh ---------------


@FAST
@given(api_keys, scopes)
def test_a_remembered_key_and_scope_still_make_equal_credentials(api_key: str, scope: list[str]) -> None:
    first, second = Credential(api_key, scope, 1), Credential(api_key, tuple(scope), 2)
    assert first.scope == second.scope == tuple(scope)
    assert all(first.allows(entry) == second.allows(entry) for entry in scope if not entry.endswith("/*"))
    with pytest.raises(CredentialError):
        Credential(api_key, [*scope, "/not a/name/x"], 1)
    with pytest.raises(CredentialError):
        Credential(api_key + "!", scope, 1)
    with pytest.raises(CredentialError):  # refused afresh every time, never remembered
        Credential(api_key + "!", scope, 1)


@pytest.mark.parametrize("body", [b"", b"\x00" * 15, b"\x00" * 16, b"\x00" * 17])
def test_a_v2_token_of_no_or_too_little_ciphertext_is_refused(body: bytes) -> None:
    """Under the right key id: a CredentialError, never another exception (the runtime's
    cryptography 43 raises ValueError on an empty ciphertext)."""
    header = b"\x02" + derived(NEW, b"messaging_lib credential v2 key id", 4)
    with pytest.raises(CredentialError):
        sealer().open(base64.urlsafe_b64encode(header + bytes(12) + body).decode())
