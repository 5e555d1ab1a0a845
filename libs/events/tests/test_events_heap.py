"""The start-up heap is frozen once per process."""

import subprocess
import sys

FREEZE_TWICE = """
import gc
from rapport_events.heap import freeze_startup_heap
freeze_startup_heap()
frozen = gc.get_freeze_count()
made_since = [[] for _ in range(10)]
freeze_startup_heap()
assert frozen > 1000 and gc.get_freeze_count() == frozen, (frozen, gc.get_freeze_count())
"""


class TestFreezeStartupHeap:
    def test_the_objects_alive_at_the_first_call_are_frozen_and_a_second_call_adds_none(
        self,
    ) -> None:
        # In a process of its own: freezing the test run's heap would keep its garbage.
        subprocess.run([sys.executable, "-c", FREEZE_TWICE], check=True, timeout=60)
