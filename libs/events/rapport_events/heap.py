"""What a process built at start-up, left out of the garbage collector's full passes.

A full collection walks every object the collector tracks. After its imports a service
holds about 185,000 (modules, classes, functions, pydantic schemas), and one pass over
them took 110 ms of CPU on the development machine, with the event loop standing still.
Work that keeps many objects alive for a moment brings such a pass every few thousand
messages: the relay's send spans, about 20 tracked objects each, live until the broker
answers. Frozen (`gc.freeze`), the start-up objects are never walked again, and a full
pass walks only what was made since.
"""

import gc

_frozen = False


def freeze_startup_heap() -> None:
    """Collect once, then leave every object alive now out of later passes; once a process."""
    global _frozen
    if _frozen:
        return
    _frozen = True
    gc.collect()  # cyclic garbage frozen now would never be freed
    gc.freeze()
