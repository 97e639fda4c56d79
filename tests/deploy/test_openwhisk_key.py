"""The OpenWhisk key of the deploy steps: parsed once, a missing and a malformed key told apart,
and kept out of messages and reprs."""

from __future__ import annotations

import pytest

from deploy.errors import DeployError
from deploy.openwhisk import OpenWhiskApi, parse_key


def test_a_key_is_split_at_its_first_colon() -> None:
    assert parse_key("23bc46b1-71f6-4ed5-8c54-816aa4f8c502:123zO3xZ") == (
        "23bc46b1-71f6-4ed5-8c54-816aa4f8c502", "123zO3xZ")
    assert parse_key("u:s:t") == ("u", "s:t")


def test_no_key_says_where_one_comes_from() -> None:
    with pytest.raises(DeployError, match=r"^no OpenWhisk key: pass --auth UUID:KEY, set WHISK_AUTH"):
        parse_key("")


def test_a_key_without_a_colon_says_it_must_be_uuid_colon_secret_without_echoing_it() -> None:
    with pytest.raises(DeployError) as raised:
        parse_key("s3cret-without-colon")
    message = str(raised.value)
    assert message.startswith("the OpenWhisk key must be UUID:KEY, a uuid and its secret joined by a colon")
    assert "check --auth" in message
    assert "s3cret" not in message


def test_the_api_reads_ow_auth_once_drops_the_trailing_slash_and_hides_the_key() -> None:
    api = OpenWhiskApi.from_env("https://ow.example/", False, {"OW_AUTH": "user:s3cret"})
    assert (api.apihost, api.key, api.verify) == ("https://ow.example", ("user", "s3cret"), False)
    assert "s3cret" not in repr(api)
    with pytest.raises(DeployError, match="must be UUID:KEY"):
        OpenWhiskApi.from_env("https://ow.example", True, {"OW_AUTH": "garbage"})
