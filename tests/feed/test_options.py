"""The options table: what it drives (parameters, READ, records, encoding) and the exact texts."""

from __future__ import annotations

import dataclasses
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from feed import options as feed_options
from feed.errors import FeedError
from feed.options import OPTIONS, Options, parse_bool
from messaging_lib.errors import RecordError

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
CAP = 900_000

options_strategy = st.builds(
    Options, is_json_data=st.booleans(), is_binary_key=st.booleans(), is_binary_value=st.booleans(),
    max_batch_bytes=st.integers(1, CAP), max_batch_messages=st.integers(1, feed_options.MAX_BATCH_MESSAGES),
    batch_window_ms=st.integers(0, feed_options.MAX_BATCH_WINDOW_MS),
).filter(lambda o: not (o.is_json_data and o.is_binary_value))


def test_the_table_is_the_options_dataclass_one_row_per_field() -> None:
    assert [o.field_name for o in OPTIONS] == [f.name for f in dataclasses.fields(Options)]
    assert [o.name for o in OPTIONS] == ["isJSONData", "isBinaryKey", "isBinaryValue", "maxBatchBytes",
                                         "maxBatchMessages", "batchWindowMs"]
    assert Options() == Options(False, False, False, 900_000, 10_000, 100)


def test_the_encoding_options_are_the_ones_the_table_marks() -> None:
    assert Options(is_json_data=True, max_batch_messages=3).encoding == (True, False, False)
    assert Options(is_binary_key=True).encoding == Options(is_binary_key=True, batch_window_ms=0).encoding


def test_update_needs_is_the_old_packages_text_word_for_word() -> None:
    assert feed_options.UPDATE_NEEDS == "At least one of isJsonData, isBinaryKey, or isBinaryValue must be supplied."


@pytest.mark.parametrize(("value", "expected"), [
    (True, True), (False, False), ("true", True), (" FALSE ", False), ("True", True),
    ("yes", None), (1, None), (0, None), (None, None), ("", None), ([], None),
])
def test_parse_bool_takes_json_booleans_and_their_text(value: object, expected: bool | None) -> None:
    assert parse_bool(value) is expected


@pytest.mark.parametrize(("params", "cap", "refusal"), [
    ({"isJSONData": "yes"}, CAP, "The 'isJSONData' parameter must be true or false."),
    ({"isBinaryKey": 1}, CAP, "The 'isBinaryKey' parameter must be true or false."),
    ({"isJSONData": True, "isBinaryValue": "true"}, CAP, "isJSONData and isBinaryValue cannot both be enabled."),
    ({"maxBatchBytes": 2_000_000}, CAP, "The 'maxBatchBytes' parameter must be a whole number from 1 to 900000."),
    ({"maxBatchBytes": 1001}, 1000, "The 'maxBatchBytes' parameter must be a whole number from 1 to 1000."),
    ({"maxBatchBytes": 0}, CAP, "The 'maxBatchBytes' parameter must be a whole number from 1 to 900000."),
    ({"maxBatchMessages": 100_001}, CAP,
     "The 'maxBatchMessages' parameter must be a whole number from 1 to 100000."),
    ({"maxBatchMessages": True}, CAP, "The 'maxBatchMessages' parameter must be a whole number from 1 to 100000."),
    ({"batchWindowMs": -1}, CAP, "The 'batchWindowMs' parameter must be a whole number from 0 to 60000."),
    ({"batchWindowMs": "1.5"}, CAP, "The 'batchWindowMs' parameter must be a whole number from 0 to 60000."),
    ({"batchWindowMs": 2.0}, CAP, "The 'batchWindowMs' parameter must be a whole number from 0 to 60000."),
])
def test_bad_parameters_are_refused_with_exact_texts(params: dict, cap: int, refusal: str) -> None:
    with pytest.raises(FeedError) as caught:
        feed_options.parse(params, Options(), cap)
    assert (str(caught.value), caught.value.status) == (refusal, 400)


def test_parameters_change_only_what_they_name_and_null_means_not_given() -> None:
    base = Options(is_binary_key=True, max_batch_messages=7)
    parsed = feed_options.parse({"isJSONData": "true", "batchWindowMs": " 0 ", "isBinaryKey": None}, base, CAP)
    assert parsed == Options(is_json_data=True, is_binary_key=True, max_batch_messages=7, batch_window_ms=0)
    assert feed_options.given({"isJSONData": None, "maxBatchBytes": 5, "topic": "t"}) == {"maxBatchBytes": 5}


def test_rules_apply_to_the_result_not_only_to_what_was_given() -> None:
    with pytest.raises(FeedError, match="cannot both be enabled"):
        feed_options.parse({"isBinaryValue": True}, Options(is_json_data=True), CAP)


@FAST
@given(options_strategy, st.booleans())
def test_parameters_round_trip_as_json_or_as_text(options: Options, as_text: bool) -> None:
    params = feed_options.to_record(options)
    if as_text:
        params = {k: str(v).lower() for k, v in params.items()}
    assert feed_options.parse(params, Options(), CAP) == options


@FAST
@given(options_strategy)
def test_records_round_trip_and_read_shows_every_option_once(options: Options) -> None:
    record = json.loads(json.dumps(feed_options.to_record(options)))
    assert feed_options.from_record(record) == options
    legacy, new = feed_options.read_view(options, legacy=True), feed_options.read_view(options, legacy=False)
    assert list(legacy) == ["isJSONData", "isBinaryKey", "isBinaryValue"]
    assert {**legacy, **new} == record


@pytest.mark.parametrize(("change", "error"), [
    ({"isJSONData": "yes"}, "isJSONData must be a boolean"),
    ({"maxBatchBytes": 0}, "maxBatchBytes must be an integer >= 1"),
    ({"batchWindowMs": -1}, "batchWindowMs must be an integer >= 0"),
    ({"maxBatchMessages": None}, "maxBatchMessages must be an integer >= 1"),
])
def test_bad_record_options_are_refused(change: dict, error: str) -> None:
    record = {**feed_options.to_record(Options()), **change}
    with pytest.raises(RecordError, match=error):
        feed_options.from_record(record)
    with pytest.raises(RecordError, match="options must be an object"):
        feed_options.from_record([])


@pytest.mark.parametrize(("value", "expected"), [
    (None, "latest"), ("", "latest"), (" Earliest ", "earliest"), ("LATEST", "latest"),
    ("2024-05-01T12:00:00Z", "2024-05-01T12:00:00Z"), (" 2024-05-01T12:00:00+02:00 ", "2024-05-01T12:00:00+02:00"),
])
def test_start_from(value: object, expected: str) -> None:
    assert feed_options.parse_start_from({"startFrom": value}) == expected


@pytest.mark.parametrize("value", ["yesterday", 5, "2024-13-01T00:00:00Z", ["latest"]])
def test_a_bad_start_from_is_refused_with_the_exact_text(value: object) -> None:
    with pytest.raises(FeedError) as caught:
        feed_options.parse_start_from({"startFrom": value})
    assert str(caught.value) == ("The 'startFrom' parameter must be latest, earliest or an ISO 8601 timestamp, "
                                 "e.g. 2024-05-01T12:00:00Z.")


def test_timestamps_without_a_zone_are_utc() -> None:
    assert feed_options.timestamp_ms("2024-05-01T12:00:00") == feed_options.timestamp_ms("2024-05-01T12:00:00Z")
    assert feed_options.timestamp_ms("1970-01-01T00:00:01.5z") == 1500


def test_batch_limits_are_capped_by_the_service() -> None:
    limits = feed_options.batch_limits(Options(max_batch_bytes=5000, max_batch_messages=3, batch_window_ms=250), 4000)
    assert (limits.max_bytes, limits.max_messages, limits.window_s) == (4000, 3, 0.25)
