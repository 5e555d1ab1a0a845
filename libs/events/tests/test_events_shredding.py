"""Crypto-shredding: personal fields sealed per customer, keys wrapped by rotatable KEKs,
tombstones that make a customer's fields unreadable for good."""

import base64
import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from sqlmodel import col, select, update

from rapport_events import outbox, shredding
from rapport_events.codec import DecodeError, Envelope, decode, encode
from rapport_events.db import SessionFactory, transaction
from rapport_events.outbox import OutboxMessage
from rapport_events.settings import KafkaSettings
from rapport_events.shredding import (
    DataKeyNotReady,
    KeyCache,
    KeyEncryptionKeys,
    ShreddingError,
    new_data_key,
    seal,
    unseal,
)
from rapport_events.types import CustomerRegistered, InteractionTracked, OrderCompleted

SOURCE = "/services/profile"
EMAIL = "ada.lovelace@example.com"


def kek(name: str) -> str:
    return f"{name}:{base64.b64encode(os.urandom(32)).decode()}"


AT = datetime(2026, 3, 1, tzinfo=UTC)


def registered(customer_id: str = "c-1") -> CustomerRegistered:
    return CustomerRegistered(
        customer_id=customer_id,
        occurred_at=AT,
        email=EMAIL,
        phone="+44 20 7946 0000",
        first_name="Ada",
        last_name="Lovelace",
        country="GB",
        social_handles={"x": "@ada"},
    )


@pytest.fixture
def cache() -> Iterator[KeyCache]:
    """A fresh process key cache, with one KEK, for the outbox and the decoder."""
    shredding._keys = None
    outbox.configure(KafkaSettings(key_encryption_keys=[kek("k1")]))
    yield shredding.keys()
    shredding._keys = None
    outbox.configure(KafkaSettings())


class TestSealing:
    def test_a_sealed_event_opens_with_its_key_and_event_id(self) -> None:
        key = new_data_key("c-1")
        data = registered().model_dump(mode="json")

        assert seal(data, CustomerRegistered.PERSONAL, key, "event-1")

        assert EMAIL not in json.dumps(data) and "Lovelace" not in json.dumps(data)
        assert data["country"] == "GB"  # not personal: readable by anyone
        assert unseal(dict(data), key, "event-1") == registered().model_dump(mode="json")

    def test_a_sealed_blob_moved_to_another_event_does_not_open(self) -> None:
        key = new_data_key("c-1")
        data = registered().model_dump(mode="json")
        seal(data, CustomerRegistered.PERSONAL, key, "event-1")

        with pytest.raises(ShreddingError):
            unseal(dict(data), key, "event-2")

    def test_another_customers_key_does_not_open_it(self) -> None:
        data = registered().model_dump(mode="json")
        seal(data, CustomerRegistered.PERSONAL, new_data_key("c-1"), "event-1")

        with pytest.raises(ShreddingError):
            unseal(dict(data), new_data_key("c-1"), "event-1")

    def test_without_a_key_the_personal_fields_are_gone(self) -> None:
        data = registered().model_dump(mode="json")
        seal(data, CustomerRegistered.PERSONAL, new_data_key("c-1"), "event-1")

        opened = unseal(dict(data), None, "event-1")

        assert "email" not in opened and shredding.SEALED_FIELD not in opened

    def test_an_event_without_personal_fields_is_left_as_it_is(self) -> None:
        data = {"customer_id": "c-1", "kind": "page"}

        assert not seal(data, InteractionTracked.PERSONAL, new_data_key("c-1"), "e")
        assert data == {"customer_id": "c-1", "kind": "page"}


class TestKeyEncryptionKeys:
    def test_the_newest_kek_wraps_and_every_kek_unwraps(self) -> None:
        old, new = kek("2025"), kek("2026")
        key = new_data_key("c-1")
        wrapped_by_old = json.loads(KeyEncryptionKeys([old]).wrap(key))
        rotated = KeyEncryptionKeys([old, new])

        assert rotated.unwrap(wrapped_by_old) == key
        assert json.loads(rotated.wrap(key))["kek"] == "2026"
        assert KeyEncryptionKeys([new]).unwrap(json.loads(rotated.wrap(key))) == key

    def test_a_key_wrapped_by_a_retired_kek_no_longer_unwraps(self) -> None:
        key = new_data_key("c-1")
        record = json.loads(KeyEncryptionKeys([kek("2025")]).wrap(key))

        with pytest.raises(ShreddingError, match="unknown KEK"):
            KeyEncryptionKeys([kek("2026")]).unwrap(record)

    def test_a_kek_with_the_same_id_but_another_secret_does_not_unwrap(self) -> None:
        record = json.loads(KeyEncryptionKeys([kek("k")]).wrap(new_data_key("c-1")))

        with pytest.raises(ShreddingError):
            KeyEncryptionKeys([kek("k")]).unwrap(record)

    @pytest.mark.parametrize("entries", [[], [""], ["k1"], ["k1:"], [":secret"], ["k:a", "k:b"]])
    def test_a_malformed_kek_list_is_refused(self, entries: list[str]) -> None:
        with pytest.raises(ShreddingError):
            KeyEncryptionKeys(entries)


class TestKeyCache:
    def test_a_record_read_from_the_topic_gives_the_key(self) -> None:
        keks = KeyEncryptionKeys([kek("k1")])
        cache, key = KeyCache(keks), new_data_key("c-1")

        cache.apply(key.kid.encode(), keks.wrap(key))

        assert cache.lookup(key.kid) == key
        assert cache.current("c-1") == key

    def test_an_unknown_key_is_not_ready_rather_than_missing(self) -> None:
        cache = KeyCache(KeyEncryptionKeys([kek("k1")]))

        with pytest.raises(DataKeyNotReady):
            cache.lookup("c-1/0000")

    def test_a_tombstone_makes_the_key_unreadable_for_good(self) -> None:
        keks = KeyEncryptionKeys([kek("k1")])
        cache, key = KeyCache(keks), new_data_key("c-1")
        cache.apply(key.kid.encode(), keks.wrap(key))

        cache.apply(key.kid.encode(), None)
        cache.apply(key.kid.encode(), keks.wrap(key))  # a late copy does not bring it back

        assert cache.lookup(key.kid) is None
        assert cache.current("c-1") is None

    def test_the_erased_marker_drops_every_key_of_the_customer_in_any_order(self) -> None:
        keks = KeyEncryptionKeys([kek("k1")])
        cache = KeyCache(keks)
        first, second, other = new_data_key("c-1"), new_data_key("c-1"), new_data_key("c-2")
        cache.apply(first.kid.encode(), keks.wrap(first))
        cache.apply(other.kid.encode(), keks.wrap(other))

        cache.apply(b"c-1", shredding.erased_marker("c-1"))
        cache.apply(second.kid.encode(), keks.wrap(second))  # on another partition, read later

        assert cache.lookup(first.kid) is None and cache.lookup(second.kid) is None
        assert cache.lookup(other.kid) == other
        assert cache.is_erased("c-1")

    def test_an_unreadable_record_is_skipped(self) -> None:
        cache = KeyCache(KeyEncryptionKeys([kek("k1")]))

        cache.apply(b"c-1/x", b"not json")
        cache.apply(b"c-1/y", json.dumps({"kid": "c-1/y"}).encode())

        assert not cache.is_settled("c-1/x") and not cache.is_settled("c-1/y")

    async def test_a_waiting_consumer_goes_on_once_the_key_is_read(self) -> None:
        import asyncio

        keks = KeyEncryptionKeys([kek("k1")])
        cache, key = KeyCache(keks), new_data_key("c-1")
        waiting = asyncio.create_task(cache.wait_for({key.kid}))
        await asyncio.sleep(0.05)
        assert not waiting.done()

        cache.apply(key.kid.encode(), keks.wrap(key))

        await asyncio.wait_for(waiting, 2.0)


async def outbox_rows(sessions: SessionFactory) -> list[OutboxMessage]:
    async with transaction(sessions) as session:
        result = await session.exec(select(OutboxMessage).order_by(col(OutboxMessage.id)))
        return list(result.all())


def as_message(row: OutboxMessage) -> tuple[bytes | None, list[tuple[str, bytes]]]:
    return row.value, [(name, value.encode()) for name, value in row.headers]


class TestOutboxSealing:
    async def test_the_key_record_goes_first_and_the_event_holds_no_personal_field(
        self, event_sessions: SessionFactory, cache: KeyCache
    ) -> None:
        async with transaction(event_sessions) as session:
            first = outbox.add(session, registered(), source=SOURCE)
            second = outbox.add(
                session,
                InteractionTracked(customer_id="c-1", kind="page", url=f"https://s/?e={EMAIL}"),
                source=SOURCE,
            )

        key_row, *events = await outbox_rows(event_sessions)
        assert key_row.topic == shredding.KEYS_TOPIC and key_row.key.startswith("c-1/")
        assert [row.event_id for row in events] == [first.id, second.id]
        for row in events:
            assert EMAIL.encode() not in row.value and b"Lovelace" not in row.value
            assert dict(row.headers)[shredding.DATA_KEY_HEADER] == key_row.key
        assert cache.current("c-1") is not None  # remembered at commit: no second key

        decoded = [decode(*as_message(row)) for row in events]
        assert decoded[0].data == registered()
        assert decoded[1].data.url == f"https://s/?e={EMAIL}"

    async def test_an_event_without_personal_fields_stays_plain(
        self, event_sessions: SessionFactory, cache: KeyCache
    ) -> None:
        from decimal import Decimal

        from rapport_events.types import LineItem

        order = OrderCompleted(
            customer_id="c-1",
            order_id="o-1",
            items=(LineItem(product_id="p", price=Decimal(1)),),
            revenue=Decimal(1),
        )
        async with transaction(event_sessions) as session:
            envelope = outbox.add(session, order, source=SOURCE)

        [row] = await outbox_rows(event_sessions)
        assert row.value == encode(envelope).value

    async def test_a_rolled_back_key_is_not_used_again(
        self, event_sessions: SessionFactory, cache: KeyCache
    ) -> None:
        with pytest.raises(RuntimeError):
            async with transaction(event_sessions) as session:
                outbox.add(session, registered(), source=SOURCE)
                raise RuntimeError("the request failed")

        assert cache.current("c-1") is None

    async def test_after_shredding_the_log_reads_as_erased(
        self, event_sessions: SessionFactory, cache: KeyCache
    ) -> None:
        async with transaction(event_sessions) as session:
            outbox.add(session, registered(), source=SOURCE)
        _, event_row = await outbox_rows(event_sessions)
        async with transaction(event_sessions) as session:
            await session.exec(select(OutboxMessage))  # the key row was sent and deleted
            shredded = await outbox.shred(session, "c-1")

        rows = await outbox_rows(event_sessions)
        assert [(row.key, row.value) for row in rows[-2:]] == [
            (shredded[0], b""),
            ("c-1", shredding.erased_marker("c-1")),
        ]
        erased = decode(*as_message(event_row)).data
        assert (erased.email, erased.first_name, erased.social_handles) == (None, None, {})
        assert erased.country == "GB"

    async def test_an_erased_customer_s_later_event_carries_no_personal_field(
        self, event_sessions: SessionFactory, cache: KeyCache
    ) -> None:
        cache.erase("c-1")
        async with transaction(event_sessions) as session:
            outbox.add(session, registered(), source=SOURCE)

        [row] = await outbox_rows(event_sessions)
        assert EMAIL.encode() not in row.value
        assert decode(*as_message(row)).data.email is None

    def test_a_sealed_event_without_its_key_header_is_a_decode_error(self, cache: KeyCache) -> None:
        envelope = Envelope(registered(), SOURCE)
        data = registered().model_dump(mode="json")
        seal(data, CustomerRegistered.PERSONAL, new_data_key("c-1"), envelope.id)

        with pytest.raises(DecodeError, match="ce_datakey"):
            decode(json.dumps(data).encode(), encode(envelope).headers)

    async def test_erasure_deletes_the_sent_records_of_the_customer_s_keys(
        self, event_sessions: SessionFactory, cache: KeyCache
    ) -> None:
        async with transaction(event_sessions) as session:
            outbox.add(session, registered("c-1"), source=SOURCE)
            outbox.add(session, registered("c-10"), source=SOURCE)
        async with transaction(event_sessions) as session:
            await session.exec(update(OutboxMessage).values(sent_at=AT))  # the relay sent them

        async with transaction(event_sessions) as session:
            assert await outbox.delete_sent(session, ["c-1"]) == 2

        left = await outbox_rows(event_sessions)
        assert sorted(row.key.split("/")[0] for row in left) == ["c-10", "c-10"]
