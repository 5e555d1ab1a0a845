"""Opening records read from the log by a plain client, with Rapport's data keys."""

import asyncio
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from typing import Any

from rapport_events import shredding
from rapport_events.key_reader import KeyReader
from rapport_events.settings import KafkaSettings


def data_key_ids(records: Iterable[Any]) -> set[str]:
    """The data key ids named by these records' headers."""
    return {
        value.decode()
        for record in records
        for name, value in record.headers or ()
        if name == shredding.DATA_KEY_HEADER and value
    }


@asynccontextmanager
async def key_reader(settings: KafkaSettings, client_id: str) -> AsyncIterator[KeyReader]:
    """This process reading the key topic into its key cache, as a service does."""
    reader = KeyReader(settings, client_id=client_id).start()
    try:
        yield reader
    finally:
        await reader.stop()


async def keys_for(records: Iterable[Any], timeout: float = 15.0) -> None:
    """Return once every data key these records are sealed with is in the key cache."""
    async with asyncio.timeout(timeout):
        await shredding.keys().wait_for(data_key_ids(records))
