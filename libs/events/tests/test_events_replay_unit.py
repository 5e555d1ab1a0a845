"""Replay's regrouping of a fetch into long runs of one type: each customer's events keep
their order, and nothing moves across an event applied on its own (no broker)."""

import random

from rapport_events.consumer import batch
from rapport_events.replay import _clock, barrier_types, regroup
from rapport_events.testing.fakes import FakeRecord
from rapport_events.types import (
    CustomerErased,
    CustomerMerged,
    CustomerRegistered,
    OrderCompleted,
)

TYPES = ["order", "cart", "page", "consent", "update"]


def record(offset: int, customer: str, kind: str) -> FakeRecord:
    return FakeRecord("t", 0, offset, customer.encode(), b"{}", [("ce_type", kind.encode())])


def stream(count: int, customers: int, seed: int, merges: bool = False) -> list[FakeRecord]:
    rng = random.Random(seed)
    kinds = [*TYPES, "merged"] if merges else TYPES
    return [record(n, f"c{rng.randrange(customers)}", rng.choice(kinds)) for n in range(count)]


def runs(records: list[FakeRecord]) -> int:
    kinds = [dict(r.headers)["ce_type"] for r in records]
    return 1 + sum(1 for a, b in zip(kinds, kinds[1:], strict=False) if a != b)


class TestRegroup:
    def test_each_customers_events_keep_their_log_order(self) -> None:
        for seed in range(20):
            records = stream(2000, 50, seed)
            ordered = regroup(records, barriers=set())
            assert sorted(r.offset for r in ordered) == list(range(2000))
            for customer in {r.key for r in records}:
                mine = [r.offset for r in ordered if r.key == customer]
                assert mine == sorted(mine)

    def test_runs_are_far_longer_than_in_log_order(self) -> None:
        records = stream(5000, 500, seed=3)
        assert runs(regroup(records, barriers=set())) * 10 < runs(records)

    def test_nothing_crosses_a_barrier(self) -> None:
        records = stream(3000, 40, seed=5, merges=True)
        ordered = regroup(records, barriers={"merged"})
        barriers = [r.offset for r in records if dict(r.headers)["ce_type"] == "merged"]
        positions = {r.offset: i for i, r in enumerate(ordered)}
        for barrier in barriers:
            assert all(positions[r.offset] < positions[barrier] for r in records[:barrier])
            after = records[barrier + 1 :]
            assert all(positions[r.offset] > positions[barrier] for r in after)

    def test_types_without_a_batch_handler_are_barriers(self) -> None:
        async def one(event: object) -> None: ...

        @batch
        async def many(events: object) -> None: ...

        found = barrier_types({CustomerRegistered: [one], OrderCompleted: [many]})
        assert CustomerRegistered.TYPE in found
        assert OrderCompleted.TYPE not in found

    def test_merges_and_erasures_are_barriers_even_with_a_batch_handler(self) -> None:
        @batch
        async def many(events: object) -> None: ...

        found = barrier_types({CustomerMerged: [many], CustomerErased: [many]})
        assert {CustomerMerged.TYPE, CustomerErased.TYPE} <= found


def test_the_eta_reads_as_a_clock() -> None:
    assert (_clock(None), _clock(65), _clock(3725)) == ("--:--", "1:05", "1:02:05")
