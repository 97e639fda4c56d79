"""local_stack.container.conf: podman's settings are added to containers.conf without losing the rest."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from local_stack.container import conf


def test_an_absent_file_gets_both_tables(tmp_path: Path) -> None:
    path = tmp_path / "containers" / "containers.conf"
    assert conf.ensure_file(path) is True
    assert tomllib.loads(path.read_text()) == {"containers": {"default_ulimits": []}, "engine": {"runtime": "runc"}}
    assert conf.ensure_file(path) is False, "a second run changes nothing"


def test_other_settings_comments_and_subtables_are_kept_and_wrong_values_replaced_in_place() -> None:
    text = """# the operator's file
[containers]
# a comment that stays
log_size_max = 1000
default_ulimits = ["nofile=1024:2048"]

[engine.runtimes]
runc = ["/usr/bin/runc"]

[network]
network_backend = "netavark"
"""
    result = conf.ensure(text)
    parsed = tomllib.loads(result)
    assert parsed["containers"] == {"log_size_max": 1000, "default_ulimits": []}
    assert parsed["engine"] == {"runtime": "runc", "runtimes": {"runc": ["/usr/bin/runc"]}}
    assert parsed["network"] == {"network_backend": "netavark"}
    assert "# the operator's file" in result and "# a comment that stays" in result
    assert conf.ensure(result) == result


def test_a_key_of_the_same_name_in_another_table_is_not_taken_for_ours() -> None:
    text = '[engine]\nruntime = "crun"\n\n[machine]\nruntime = "x"\n'
    parsed = tomllib.loads(conf.ensure(text))
    assert parsed["engine"]["runtime"] == "runc" and parsed["machine"]["runtime"] == "x"
    assert parsed["containers"]["default_ulimits"] == []


def test_a_file_that_is_not_toml_is_refused_not_rewritten(tmp_path: Path) -> None:
    path = tmp_path / "containers.conf"
    path.write_text("[containers\nbroken")
    with pytest.raises(tomllib.TOMLDecodeError):
        conf.ensure_file(path)
    assert path.read_text() == "[containers\nbroken"
