"""The relay's partitioner gives the partitions aiokafka's default partitioner gives."""

import random
import uuid

from aiokafka.partitioner import DefaultPartitioner
from aiokafka.partitioner import murmur2 as aiokafka_murmur2

from rapport_events.partitioning import KeyPartitioner, murmur2


def keys() -> list[bytes]:
    generator = random.Random(20261204)
    by_length = [generator.randbytes(length) for length in range(0, 80) for _ in range(25)]
    ids = [str(uuid.UUID(int=generator.getrandbits(128))).encode() for _ in range(2000)]
    return by_length + ids + [b"customer-1", "clé-ü".encode(), b"\xff" * 9]


class TestMurmur2:
    def test_it_hashes_every_key_as_aiokafka_does(self) -> None:
        for key in keys():
            assert murmur2(key) == aiokafka_murmur2(key), key


class TestKeyPartitioner:
    def test_it_picks_the_default_partitioners_partition_for_every_count(self) -> None:
        partitioner, default = KeyPartitioner(), DefaultPartitioner()
        for count in (1, 2, 3, 7, 12, 64):
            partitions = list(range(count))
            for key in keys():
                assert partitioner(key, partitions) == default(key, partitions, None)

    def test_a_partition_count_change_is_followed_for_cached_keys(self) -> None:
        partitioner, default = KeyPartitioner(), DefaultPartitioner()
        key = b"3f0c1a9e-7d2b-4e5f-9a6b-0c1d2e3f4a5b"
        for partitions in ([0, 1, 2], [0, 1, 2, 3, 4, 5], [0, 1, 2]):
            assert partitioner(key, partitions) == default(key, partitions, None)

    def test_a_full_cache_starts_again_and_still_agrees(self) -> None:
        partitioner, default = KeyPartitioner(cached_keys=8), DefaultPartitioner()
        partitions = [0, 1, 2, 3, 4]
        for key in keys()[:100] * 2:
            assert partitioner(key, partitions) == default(key, partitions, None)
