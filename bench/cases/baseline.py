"""Raw aiokafka on this broker: produce (send + gather each batch) and getmany consume.

These rows are the reference the other cases are divided by; each later case
measures its own baseline again next to itself, so these are for the record.
"""

from bench import kafka_raw
from bench.core import Context, Result

NAME = "baseline"
SIZES = (256, 1024)


async def run(ctx: Context) -> list[Result]:
    sizes = ctx.sizes
    results = []
    for size in SIZES:
        settings = await ctx.topic(f"raw-{size}")
        messages = kafka_raw.plain_messages(sizes.messages, size)
        produced = await kafka_raw.produce_rate(
            settings, settings.topic, messages, sizes.max_seconds
        )
        consumed, runs = await kafka_raw.consume_rate_median(
            settings,
            total=len(messages) + kafka_raw.BATCH,  # produce_rate's warm-up batch is read too
            skip=kafka_raw.BATCH,
            repeats=sizes.repeats,
            timeout=sizes.max_seconds,
        )
        note = f"{sizes.messages} msgs, {ctx.partitions} partitions"
        results.append(Result(f"raw produce {size} B", "msgs/s", produced, notes=note))
        results.append(
            Result(
                f"raw consume {size} B",
                "msgs/s",
                consumed,
                notes=f"{note}, median of {len(runs)} groups",
                details={"runs": runs},
            )
        )
    return results
