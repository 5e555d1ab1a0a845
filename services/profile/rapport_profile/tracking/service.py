"""Tracking calls become domain events: track / page / screen, batches of them, and alias.

`ingest`, behind every tracking route, takes the request's `ProfileUnitOfWork`."""

from collections.abc import Collection
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from pydantic import ValidationError

from rapport_events.base import Event, utcnow
from rapport_events.types import (
    CartUpdated,
    InteractionTracked,
    LineItem,
    LoyaltyPointsEarned,
    OrderCompleted,
    SurveyCompleted,
)
from rapport_profile.consents import privacy_signals
from rapport_profile.consents import service as consent_service
from rapport_profile.customers import service as customer_service
from rapport_profile.shared import aware, new_message_id
from rapport_profile.tracking import identify
from rapport_profile.tracking.identify import Directory
from rapport_profile.tracking.models import TrackedMessage
from rapport_profile.tracking.parsing import ANONYMOUS, EARLIEST, USER, BadTrackingCall, Message
from rapport_profile.unit_of_work import ProfileUnitOfWork

ORDER_EVENTS = {"order completed"}


CART_ACTIONS = {
    "product added": "product_added",
    "product removed": "product_removed",
    "cart viewed": "cart_viewed",
    "checkout started": "checkout_started",
}


SURVEY_EVENTS = {"survey completed", "survey submitted", "survey responded", "survey answered"}


LOYALTY_EVENTS = {
    "loyalty points earned",
    "loyalty points added",
    "points earned",
    "reward points earned",
}


SEARCH_EVENTS = {"products searched", "search", "searched"}


# What the NUMERIC(14, 2) money columns hold.
MAX_MONEY = Decimal("999999999999.99")


MAX_QUANTITY = 1_000_000


# Loyalty points are kept in a 32-bit integer column; a single call stays well inside it.
MAX_POINTS = 1_000_000_000


# Segment's context.campaign names and the UTM parameters they stand for.
UTM_PARAMETERS = {
    "name": "utm_campaign",
    "source": "utm_source",
    "medium": "utm_medium",
    "term": "utm_term",
    "content": "utm_content",
}


def _when(message: Message) -> datetime:
    """When it happened, corrected for the sender's clock skew as Segment does.

    parse_messages has bounded both times, so the correction cannot overflow.
    """
    received = utcnow()
    if message.timestamp is None:
        return received
    timestamp = aware(message.timestamp)
    if message.sentAt is None:
        return timestamp
    skewed = timestamp + (received - aware(message.sentAt))
    # A corrected time past arrival (or before any plausible one) means a broken clock.
    return min(max(skewed, EARLIEST), received)


def utm(context: dict[str, Any]) -> dict[str, str]:
    """`context.campaign` (Segment's names: name, source, medium, term, content) as the
    standard UTM parameters (`name` is `utm_campaign`)."""
    campaign = context.get("campaign")
    if not isinstance(campaign, dict):
        return {}
    return {
        UTM_PARAMETERS[key]: str(value)[:200]
        for key, value in campaign.items()
        if key in UTM_PARAMETERS and value not in (None, "")
    }


def acquisition_channel(context: dict[str, Any]) -> str | None:
    """The UTM campaign's medium (email, cpc, social...), else its source."""
    tags = utm(context)
    channel = tags.get("utm_medium") or tags.get("utm_source")
    return channel.strip().lower()[:64] if channel else None


def _money(value: Any, where: str) -> Decimal | None:
    if value in (None, ""):
        return None
    try:
        amount = Decimal(str(value))
        if not amount.is_finite() or not 0 <= amount <= MAX_MONEY:
            raise BadTrackingCall(f"{where} must be a number from 0 to {MAX_MONEY}")
        return amount.quantize(Decimal("0.01"))
    except (InvalidOperation, ValueError) as error:
        if isinstance(error, BadTrackingCall):
            raise
        raise BadTrackingCall(f"{where} is not a number") from error


def _whole(value: Any, where: str, low: int, high: int) -> int:
    """An integer within [low, high]; floats must be whole (1e400 and NaN are refused)."""
    try:
        number = int(value) if not isinstance(value, float) or value.is_integer() else None
    except (ArithmeticError, ValueError, TypeError) as error:
        raise BadTrackingCall(f"{where} is not a whole number") from error
    if number is None or isinstance(value, bool) or not low <= number <= high:
        raise BadTrackingCall(f"{where} must be a whole number from {low} to {high}")
    return number


def _line(product: dict[str, Any], where: str) -> LineItem:
    product_id = product.get("product_id") or product.get("sku") or product.get("id")
    quantity = product.get("quantity", 1)
    try:
        return LineItem(
            product_id=str(product_id or "unknown")[:128],
            sku=_text(product.get("sku")),
            product_model=_text(product.get("model") or product.get("variant")),
            name=_text(product.get("name"), 256),
            category=_text(product.get("category")),
            price=_money(product.get("price"), f"{where}.price") or Decimal(0),
            quantity=_whole(quantity, f"{where}.quantity", 1, MAX_QUANTITY)
            if quantity not in (None, "")
            else 1,
            serial_number=_text(product.get("serial_number")),
        )
    except (ValidationError, ArithmeticError, ValueError, TypeError) as error:
        raise BadTrackingCall(f"{where} is not a valid product: {error}") from error


def _total(items: list[LineItem], where: str) -> Decimal:
    """The items' value, refused when it passes what an amount can hold."""
    total = sum((i.price * i.quantity for i in items), Decimal(0))
    if total > MAX_MONEY:
        raise BadTrackingCall(f"{where} add up to more than {MAX_MONEY}")
    return total


def _text(value: Any, limit: int = 128) -> str | None:
    return str(value)[:limit] if value not in (None, "") else None


def _products(properties: dict[str, Any], where: str) -> list[LineItem]:
    products = properties.get("products")
    if isinstance(products, list):
        return [
            _line(p, f"{where}.products[{i}]")
            for i, p in enumerate(products)
            if isinstance(p, dict)
        ]
    if properties.get("product_id") or properties.get("sku"):
        return [_line(properties, where)]
    return []


def _currency(properties: dict[str, Any], default: str) -> str:
    currency = properties.get("currency")
    return str(currency).upper()[:8] if currency else default


def events_for(
    message: Message, customer_id: str, occurred_at: datetime, *, currency: str = "EUR"
) -> list[Event]:
    """The domain events one track, page or screen call stands for; amounts without a
    `currency` are in `currency` (the shop's, PROFILE_DEFAULT_CURRENCY)."""
    base: dict[str, Any] = {"customer_id": customer_id, "occurred_at": occurred_at}
    props, context = message.properties, message.context
    page: dict[str, Any] = context["page"] if isinstance(context.get("page"), dict) else {}
    anonymous = str(message.anonymousId) if message.anonymousId not in (None, "") else None
    interaction: dict[str, Any] = {
        **base,
        "anonymous_id": anonymous,
        "message_id": message.messageId,
        "properties": props,
        "url": _text(props.get("url") or page.get("url"), 2048),
        "referrer": _text(props.get("referrer") or page.get("referrer"), 2048),
        "user_agent": _text(context.get("userAgent"), 512),
        "utm": utm(context),
    }
    if message.type in ("page", "screen"):
        name = " ".join(p for p in (message.category, message.name) if p) or None
        return [InteractionTracked(kind=message.type, name=name, **interaction)]
    name = (message.event or "").strip()
    key = name.lower()
    where = f"properties of '{name}'"
    try:
        if key in ORDER_EVENTS:
            items = _products(props, where)
            revenue = next(
                (
                    amount
                    for field in ("revenue", "subtotal", "total", "value")
                    if (amount := _money(props.get(field), f"{where}.{field}")) is not None
                ),
                None,
            )
            if revenue is None:
                revenue = _total(items, f"{where}.products")
            if not items:
                items = [LineItem(product_id="unspecified", price=revenue, quantity=1)]
            order_id = props.get("order_id") or props.get("orderId") or props.get("checkout_id")
            return [
                OrderCompleted(
                    **base,
                    order_id=str(order_id or message.messageId)[:128],
                    items=tuple(items),
                    revenue=revenue,
                    currency=_currency(props, currency),
                    discount=_money(props.get("discount"), f"{where}.discount") or Decimal(0),
                    shipping=_money(props.get("shipping"), f"{where}.shipping") or Decimal(0),
                    tax=_money(props.get("tax"), f"{where}.tax") or Decimal(0),
                    coupon=_text(props.get("coupon")),
                    sales_channel=_text(props.get("affiliation") or props.get("sales_channel")),
                    cost=_money(props.get("cost"), f"{where}.cost"),
                )
            ]
        if key in CART_ACTIONS:
            items = _products(props, where)
            value = _money(props.get("value") or props.get("revenue"), f"{where}.value")
            cart_id = props.get("cart_id") or props.get("checkout_id") or f"cart-{customer_id}"
            return [
                CartUpdated(
                    **base,
                    cart_id=str(cart_id)[:128],
                    action=CART_ACTIONS[key],  # type: ignore[arg-type]
                    items=tuple(items),
                    value=value if value is not None else _total(items, f"{where}.products"),
                    currency=_currency(props, currency),
                )
            ]
        if key in SURVEY_EVENTS:
            answers = props.get("answers")
            if not isinstance(answers, dict):
                answers = {k: v for k, v in props.items() if k not in ("survey_id", "nps_score")}
            score = props.get("nps_score", props.get("score"))
            return [
                SurveyCompleted(
                    **base,
                    survey_id=str(props.get("survey_id") or props.get("surveyId") or name)[:128],
                    answers=answers,
                    nps_score=_whole(score, f"{where}.nps_score", 0, 10)
                    if score not in (None, "")
                    else None,
                )
            ]
        if key in LOYALTY_EVENTS:
            if props.get("points") in (None, ""):
                raise BadTrackingCall(f"{where} needs points")
            balance = props.get("balance")
            return [
                LoyaltyPointsEarned(
                    **base,
                    program=str(props.get("program") or "default")[:128],
                    points=_whole(props["points"], f"{where}.points", -MAX_POINTS, MAX_POINTS),
                    balance=_whole(balance, f"{where}.balance", 0, MAX_POINTS)
                    if balance not in (None, "")
                    else None,
                    reason=_text(props.get("reason"), 256),
                    order_id=_text(props.get("order_id")),
                )
            ]
        if key in SEARCH_EVENTS:
            query = props.get("query") or props.get("search") or props.get("q")
            return [
                InteractionTracked(
                    kind="search", name=name, search_query=_text(query, 512), **interaction
                )
            ]
    except (ValidationError, ArithmeticError, ValueError, TypeError) as error:
        if isinstance(error, BadTrackingCall):
            raise
        raise BadTrackingCall(f"{where} do not fit '{name}': {error}") from error
    return [InteractionTracked(kind="track", name=name, **interaction)]


async def ingest(
    uow: ProfileUnitOfWork,
    messages: list[Message],
    *,
    currency: str = "EUR",
    gpc: bool = False,
    sharing_categories: Collection[str] = privacy_signals.DEFAULT_SHARING_CATEGORIES,
) -> int:
    """Apply the messages in order; a messageId seen before is skipped. Returns how many applied.

    `gpc` is the request's Global Privacy Control signal (`Sec-GPC: 1`); with it, or with
    `context.gpc` or a refused sharing category on a message, the caller refuses sale and
    sharing, recorded once per person for the whole batch (`service.refuse_sharing`).

    The callers of a run of track/page/screen calls are resolved from identities read
    together (Directory), and the rows of those calls are held back and written together;
    they are written before anything that can change identities or publish (identify,
    alias, a merge, a new acquisition channel), which keeps every customer's events in
    order and lets a merge move them.
    """
    given = {m.messageId for m in messages if m.messageId}
    seen = await uow.tracking.seen_message_ids(given) if given else set()
    held: list[TrackedMessage | Event] = []
    ids = Directory(uow)
    settled: set[str] = set()  # customers whose acquisition channel is known to be set
    refusals: dict[str, str] = {}  # who refused sale and sharing, and how
    applied = 0
    for index, message in enumerate(messages):
        if message.messageId:
            if message.messageId in seen:
                continue
        else:
            message.messageId = new_message_id()
        seen.add(message.messageId)
        channel = acquisition_channel(message.context)
        if message.type in ("identify", "alias"):
            await _release(uow, held)
            handler = identify.identify if message.type == "identify" else alias
            customer_id = await handler(uow, message, channel=channel)
            ids.forget()
            if await identify._is_erased(uow, customer_id):
                continue
            uow.tracking.add(TrackedMessage(message_id=message.messageId, customer_id=customer_id))
            _note_refusal(refusals, message, customer_id, gpc, sharing_categories)
            applied += 1
            continue
        if not ids.loaded:
            await ids.load(_run_from(messages, index))
        customer_id = await identify.resolve_caller(
            uow, message, channel=channel, known=ids, before_merge=lambda: _release(uow, held)
        )
        if await ids.is_erased(customer_id):
            continue  # late calls about an erased customer are dropped, leaving no trace
        held.append(TrackedMessage(message_id=message.messageId, customer_id=customer_id))
        _note_refusal(refusals, message, customer_id, gpc, sharing_categories)
        applied += 1
        if channel and customer_id not in settled and await ids.is_customer(customer_id):
            # The channel is set once: after this check it is set, whatever it was.
            settled.add(customer_id)
            customer = customer_service.changeable(
                await uow.customers.lock_customer(customer_id), customer_id
            )
            if customer.acquisition_channel is None:
                await _release(uow, held)
                await customer_service.record_changes(
                    uow, customer, {"acquisition_channel": channel}
                )
        if message.type == "group":
            await identify.join_account(uow, message, customer_id)
            held.append(identify.account_joined(message, customer_id))
            continue
        held.extend(events_for(message, customer_id, _when(message), currency=currency))
    await _release(uow, held)
    # After the batch: an id that an identify in it merged away resolves to its survivor.
    await consent_service.refuse_sharing(uow, refusals)
    return applied


def _note_refusal(
    refusals: dict[str, str],
    message: Message,
    customer_id: str,
    gpc: bool,
    sharing_categories: Collection[str],
) -> None:
    source = privacy_signals.refusal_source(
        message.context, gpc_header=gpc, sharing_categories=sharing_categories
    )
    if source is not None:
        refusals.setdefault(customer_id, source)


def _run_from(messages: list[Message], start: int) -> list[Message]:
    """The calls from `start` up to the next identify or alias, which may change identities."""
    run = []
    for message in messages[start:]:
        if message.type in ("identify", "alias"):
            break
        run.append(message)
    return run


async def _release(uow: ProfileUnitOfWork, held: list[TrackedMessage | Event]) -> None:
    """Write the held rows: the messageIds applied, and the events in order, in bulk."""
    if not held:
        return
    for item in held:
        if isinstance(item, TrackedMessage):
            uow.tracking.add(item)
    await uow.outbox.publish([item for item in held if isinstance(item, Event)])
    held.clear()


async def alias(uow: ProfileUnitOfWork, message: Message, *, channel: str | None) -> str:
    """`previousId` and `userId` are one person: fold the previous id's activity in."""
    owner = await identify.resolve_caller(uow, message, channel=channel)
    previous = str(message.previousId)
    before = await identify._owner_of_identity(
        uow, USER, previous
    ) or await identify._owner_of_identity(uow, ANONYMOUS, previous)
    if before is not None and before != owner and not await identify._is_customer(uow, before):
        await identify._fold(uow, owner, before, "identify")
    return owner
