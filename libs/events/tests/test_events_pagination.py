"""Cursors round-trip their keys, and anything a client makes up is a 4xx before a query."""

import base64
import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from rapport_events import errors
from rapport_events.pagination import BadCursor, decode_cursor, encode_cursor


def forged(values: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(values).encode()).decode()


class TestRoundTrip:
    def test_keys_come_back_of_the_kinds_asked_for(self) -> None:
        at = datetime(2026, 12, 3, 8, 30, 15, 123456, tzinfo=UTC)

        assert decode_cursor(encode_cursor(at, "t-1", 42), datetime, str, int) == (at, "t-1", 42)

    def test_times_come_back_in_utc_whatever_zone_or_none_went_in(self) -> None:
        paris = datetime(2026, 12, 3, 9, 0, tzinfo=timezone(timedelta(hours=1)))
        naive = datetime(2026, 12, 3, 8, 0)  # as SQLite hands stored UTC back

        (from_paris,) = decode_cursor(encode_cursor(paris), datetime)
        (from_naive,) = decode_cursor(encode_cursor(naive), datetime)

        assert from_paris == from_naive == datetime(2026, 12, 3, 8, 0, tzinfo=UTC)
        assert from_paris.tzinfo is UTC

    def test_a_cursor_is_url_safe(self) -> None:
        cursor = encode_cursor("?/+&=" * 10, datetime.now(UTC))

        assert set(cursor) <= set(
            "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
        )


class TestRefusals:
    @pytest.mark.parametrize(
        "cursor",
        [
            "not base64 at all!",
            forged({"at": "x"}),
            forged(["2026-12-03T08:00:00"]),  # one key where two are asked for
            forged(["yesterday", "t-1"]),
            forged(["2026-12-03T08:00:00", 7]),
            forged(["2026-12-03T08:00:00", ""]),
            forged(["2026-12-03T08:00:00", "t\x00"]),
            forged(["2026-12-03T08:00:00", "t" * 65]),
            "A" * 513,
            forged(
                [[[[[[[[]]]]]]]],
            ),
        ],
    )
    def test_a_made_up_cursor_is_a_bad_cursor(self, cursor: str) -> None:
        with pytest.raises(BadCursor, match="not one this service handed out"):
            decode_cursor(cursor, datetime, str)

    def test_a_bad_cursor_is_answered_422_by_the_shared_handlers(self) -> None:
        assert issubclass(BadCursor, errors.InvalidRequest)
        assert (BadCursor.status_code, BadCursor.code) == (422, "invalid_request")

    def test_row_numbers_must_be_row_numbers(self) -> None:
        for value in (-1, 2**63, True, 1.5, "3"):
            with pytest.raises(BadCursor):
                decode_cursor(forged([value]), int)

    def test_a_service_may_refuse_with_its_own_error(self) -> None:
        class Refused(errors.InvalidRequest):
            status_code = 400

        with pytest.raises(Refused):
            decode_cursor("%%%", str, refuse=Refused)
