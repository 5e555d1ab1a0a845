"""The tracking API, compatible with Segment's HTTP Tracking API.

identify / track / page / screen calls and batches of them become domain events;
identify also resolves who the visitor is (and merges duplicates it uncovers).
"""

import contextlib
import hashlib
import json
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, EmailStr, Field, TypeAdapter, ValidationError
from sqlmodel.ext.asyncio.session import AsyncSession

from rapport_events import errors
from rapport_events.base import Event, utcnow
from rapport_events.limits import Checked, FreeJson
from rapport_events.types import (
    AccountJoined,
    CartUpdated,
    CustomerMerged,
    CustomerRegistered,
    CustomerUpdated,
    InteractionTracked,
    LineItem,
    LoyaltyPointsEarned,
    OrderCompleted,
    SurveyCompleted,
)
from rapport_profile import privacy_signals, service, store
from rapport_profile.models import (
    E164,
    Account,
    AccountMember,
    Customer,
    Identity,
    TrackedMessage,
    aware,
    event_fields,
)

MAX_CALL_BYTES = 32 * 1024
MAX_BATCH_BYTES = 500 * 1024
ANONYMOUS, USER = "anonymous_id", "user_id"

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
# Times a tracking call may carry; a wider range would overflow the skew correction.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)

_email = TypeAdapter(EmailStr)
# The column widths of the customer fields that traits fill.
TRAIT_LIMITS = {
    "first_name": 100,
    "last_name": 100,
    "gender": 32,
    "income_band": 32,
    "education": 64,
    "city": 100,
    "country": 2,
}


# Traits with no column of their own are kept as a JSON map on the customer (and on an
# account), within these bounds; a call that would pass them is refused (400).
CUSTOM_TRAITS_MAX_KEYS = 100
CUSTOM_TRAIT_KEY_MAX_CHARS = 100
CUSTOM_TRAITS_MAX_BYTES = 16 * 1024
# The traits that fill customer columns (see _traits); every other trait is custom.
COLUMN_TRAITS = frozenset(
    {
        "address",
        "birth_date",
        "birthday",
        "city",
        "country",
        "education",
        "email",
        "externalIds",
        "external_ids",
        "firstName",
        "first_name",
        "gender",
        "incomeBand",
        "income_band",
        "lastName",
        "last_name",
        "name",
        "phone",
        "socialHandles",
        "social_handles",
    }
)
# Segment's context.campaign names and the UTM parameters they stand for.
UTM_PARAMETERS = {
    "name": "utm_campaign",
    "source": "utm_source",
    "medium": "utm_medium",
    "term": "utm_term",
    "content": "utm_content",
}


class BadTrackingCall(errors.InvalidRequest):
    """A tracking call that cannot be accepted (400, as Segment answers)."""

    status_code = 400
    code = "bad_request"

    def details(self) -> dict[str, Any]:
        # Segment's shape, `{"code", "message"}`, besides ours.
        return {"code": self.code}


# --- parsing -------------------------------------------------------------------------------


Id = str | int


class Message(Checked):
    """One Segment message; unknown fields are allowed, as Segment allows them."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    type: Literal["identify", "track", "page", "screen", "alias", "group"] | None = None
    userId: Id | None = None
    anonymousId: Id | None = None
    messageId: str | None = Field(default=None, max_length=128)
    timestamp: datetime | None = None
    sentAt: datetime | None = None
    context: FreeJson = {}
    properties: FreeJson = {}
    traits: FreeJson = {}
    event: str | None = Field(default=None, max_length=200)
    name: str | None = Field(default=None, max_length=200)
    category: str | None = Field(default=None, max_length=200)
    previousId: Id | None = None
    groupId: Id | None = None


class Batch(BaseModel):
    model_config = ConfigDict(extra="allow")

    batch: list[dict[str, Any]]
    sentAt: datetime | None = None
    context: FreeJson = {}


async def read_body(chunks: AsyncIterator[bytes], encoding: str | None, limit: int) -> bytes:
    """The request body, refused past `limit` bytes (before or after gunzip)."""
    body = bytearray()
    async for chunk in chunks:
        body += chunk
        if len(body) > limit:
            raise BadTrackingCall(f"request body is larger than {limit // 1024} KB")
    if (encoding or "").lower() == "gzip":
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            raw = inflater.decompress(bytes(body), limit + 1)
        except zlib.error as error:
            raise BadTrackingCall("the gzip body is corrupt") from error
        if len(raw) > limit or inflater.unconsumed_tail:
            raise BadTrackingCall(f"request body is larger than {limit // 1024} KB")
        return raw
    return bytes(body)


def parse_json(raw: bytes) -> dict[str, Any]:
    try:
        value = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as error:
        raise BadTrackingCall(f"the body is not valid JSON: {error}") from error
    except RecursionError as error:
        raise BadTrackingCall("the body is nested too deep") from error
    if not isinstance(value, dict):
        raise BadTrackingCall("the body must be a JSON object")
    return value


def parse_messages(payload: dict[str, Any], kind: str | None) -> list[Message]:
    """The messages of one call (`kind` set) or of a batch (`kind` None)."""
    if kind is not None:
        raw_messages, shared_sent_at, shared_context = [payload], None, {}
    else:
        try:
            batch = Batch.model_validate(payload)
        except ValidationError as error:
            raise BadTrackingCall(f"a batch needs a `batch` list of messages: {error}") from error
        raw_messages, shared_sent_at, shared_context = batch.batch, batch.sentAt, batch.context
    messages = []
    for index, raw in enumerate(raw_messages):
        where = f"batch[{index}]" if kind is None else "message"
        try:
            # Validation bounds the nesting first, so measuring the message is safe.
            message = Message.model_validate(raw)
        except ValidationError as error:
            raise BadTrackingCall(f"{where} is malformed: {_first_error(error)}") from error
        if len(json.dumps(raw, default=str).encode()) > MAX_CALL_BYTES:
            raise BadTrackingCall(f"{where} is larger than 32 KB")
        if kind is not None:
            message.type = kind  # type: ignore[assignment]
        if message.type is None:
            raise BadTrackingCall(f"{where} has no type")
        if message.userId in (None, "") and message.anonymousId in (None, ""):
            raise BadTrackingCall(f"{where} needs a userId or an anonymousId")
        for name in ("userId", "anonymousId", "previousId"):
            value = getattr(message, name)
            if value is not None and len(str(value)) > 255:
                raise BadTrackingCall(f"{where}.{name} is longer than 255 characters")
        if message.type == "track" and not message.event:
            raise BadTrackingCall(f"{where} is a track call without an event name")
        if message.type == "alias" and message.previousId in (None, ""):
            raise BadTrackingCall(f"{where} is an alias call without a previousId")
        if message.type == "group":
            if message.groupId in (None, ""):
                raise BadTrackingCall(f"{where} is a group call without a groupId")
            if len(str(message.groupId)) > 255:
                raise BadTrackingCall(f"{where}.groupId is longer than 255 characters")
            merge_traits({}, message.traits, f"{where}.traits")
        if message.type == "identify":
            merge_traits({}, custom_traits(all_traits(message)), f"{where}.traits")
        message.sentAt = message.sentAt or shared_sent_at
        for name in ("timestamp", "sentAt"):
            value = getattr(message, name)
            if value is not None:
                setattr(message, name, _in_range(value, f"{where}.{name}"))
        if shared_context:
            message.context = {**shared_context, **message.context}
        messages.append(message)
    return messages


def _first_error(error: ValidationError) -> str:
    first = error.errors()[0]
    where = ".".join(str(p) for p in first["loc"])
    return f"{where}: {first['msg']}" if where else first["msg"]


def _in_range(value: datetime, name: str) -> datetime:
    moment = aware(value)
    if not EARLIEST <= moment < LATEST:
        raise BadTrackingCall(f"{name} must lie between {EARLIEST:%Y} and {LATEST:%Y}")
    return moment.astimezone(UTC)


# --- identity resolution ---------------------------------------------------------------------


def pseudo_id(kind: str, value: str) -> str:
    """The customer id of someone not identified yet (fits the log's 64-character key)."""
    prefix = "anon:" if kind == ANONYMOUS else "user:"
    if len(value) <= 58:
        return prefix + value
    return prefix + hashlib.sha256(value.encode()).hexdigest()[:40]


async def _owner_of_identity(session: AsyncSession, kind: str, value: str) -> str | None:
    identity = await store.get_identity(session, kind, value)
    if identity is None:
        return None
    return await service.resolve(session, identity.customer_id)


async def _is_customer(session: AsyncSession, customer_id: str) -> bool:
    customer = await store.get_customer(session, customer_id)
    return customer is not None and customer.status == "active"


class Directory:
    """Identities, aliases, erasures and customers as this transaction sees them.

    `load` reads what a run of messages refers to with a few queries, where resolving
    them one by one took several round trips per message; anything not loaded is read
    when asked for, then kept. Writes that change an answer teach it (`learn`) or make
    it start over (`forget`), so an answer is always what the database would say now.
    """

    def __init__(self, session: AsyncSession) -> None:
        self._session = session
        self._identities: dict[tuple[str, str], Identity | None] = {}
        self._erased: dict[str, bool] = {}
        self._customers: dict[str, bool] = {}
        self.loaded = False

    async def load(self, messages: Sequence[Message]) -> None:
        """Read at once what resolving these messages' callers will ask for."""
        self.loaded = True
        users = {str(m.userId) for m in messages if m.userId not in (None, "")}
        visitors = {str(m.anonymousId) for m in messages if m.anonymousId not in (None, "")}
        pseudo = {pseudo_id(USER, u) for u in users} | {pseudo_id(ANONYMOUS, a) for a in visitors}
        await self._load_identities(USER, users)
        await self._load_identities(ANONYMOUS, visitors)
        owners = {
            identity.customer_id
            for (kind, _), identity in self._identities.items()
            if identity is not None and kind in (USER, ANONYMOUS)
        }
        await self._load_identities(service.ALIAS, users | pseudo | owners)
        named = users | pseudo | owners
        resolved = {await self.resolve(customer_id) for customer_id in named}
        await self._load_customers(resolved)
        await self._load_erasures(named | resolved)

    async def _load_identities(self, kind: str, values: set[str]) -> None:
        wanted = {v for v in values if (kind, v) not in self._identities}
        if not wanted:
            return
        for value in wanted:
            self._identities[(kind, value)] = None
        for identity in await store.identities_among(self._session, kind, wanted):
            self._identities[(kind, identity.value)] = identity

    async def _load_customers(self, customer_ids: set[str]) -> None:
        wanted = {c for c in customer_ids if c not in self._customers}
        if not wanted:
            return
        for customer_id in wanted:
            self._customers[customer_id] = False
        for customer in await store.customers_among(self._session, wanted):
            self._customers[customer.id] = customer.status == "active"

    async def _load_erasures(self, customer_ids: set[str]) -> None:
        wanted = {c for c in customer_ids if c not in self._erased}
        if not wanted:
            return
        erased = await store.erased_among(self._session, wanted)
        for customer_id in wanted:
            self._erased[customer_id] = customer_id in erased

    async def identity(self, kind: str, value: str) -> Identity | None:
        if (kind, value) not in self._identities:
            self._identities[(kind, value)] = await store.get_identity(self._session, kind, value)
        return self._identities[(kind, value)]

    async def resolve(self, customer_id: str) -> str:
        """The id that owns `customer_id` now (as service.resolve answers)."""
        alias = await self.identity(service.ALIAS, customer_id)
        return alias.customer_id if alias is not None else customer_id

    async def owner_of_identity(self, kind: str, value: str) -> str | None:
        identity = await self.identity(kind, value)
        if identity is None:
            return None
        return await self.resolve(identity.customer_id)

    async def is_erased(self, customer_id: str) -> bool:
        if customer_id not in self._erased:
            self._erased[customer_id] = await service.is_erased(self._session, customer_id)
        return self._erased[customer_id]

    async def is_customer(self, customer_id: str) -> bool:
        """Whether `customer_id` is an active customer."""
        if customer_id not in self._customers:
            self._customers[customer_id] = await _is_customer(self._session, customer_id)
        return self._customers[customer_id]

    def learn(self, identity: Identity) -> None:
        """An identity this transaction added."""
        self._identities[(identity.kind, identity.value)] = identity

    def forget(self) -> None:
        """Start over after a change that may touch any answer (a merge, an identify)."""
        self._identities.clear()
        self._erased.clear()
        self._customers.clear()
        self.loaded = False


async def resolve_caller(
    session: AsyncSession,
    message: Message,
    *,
    channel: str | None,
    topic: str,
    known: Directory | None = None,
    before_merge: Callable[[], Awaitable[None]] | None = None,
) -> str:
    """The customer a message is about, linking its anonymous id to a known user id.

    `known` answers the lookups when the caller read them in bulk; `before_merge` runs
    before a merge, for a caller holding rows back that the merge must see and precede.
    """
    ids = known or Directory(session)
    user = str(message.userId) if message.userId not in (None, "") else None
    anonymous = str(message.anonymousId) if message.anonymousId not in (None, "") else None
    owner: str | None = None
    if user is not None:
        # The caller drops what it has about an erased customer; nothing may link to it again.
        for erased in (user, pseudo_id(USER, user)):
            if await ids.is_erased(erased):
                return erased
        current = await ids.resolve(user)  # a merged customer's id still works
        if await ids.is_customer(current):
            owner = current
        else:
            owner = await ids.owner_of_identity(USER, user)
        if owner is None:
            # Not known yet: the user id joins the anonymous visitor's id when there is one.
            visitor = await ids.owner_of_identity(ANONYMOUS, anonymous) if anonymous else None
            owner = visitor or await ids.resolve(pseudo_id(USER, user))
            _add_identity(session, ids, Identity(kind=USER, value=user, customer_id=owner))
            await session.flush()
    if anonymous is None:
        assert owner is not None
        return owner
    anonymous_owner = await ids.owner_of_identity(ANONYMOUS, anonymous)
    if owner is None:
        if anonymous_owner is not None:
            return anonymous_owner
        owner = pseudo_id(ANONYMOUS, anonymous)
        if await ids.is_erased(owner):
            return owner
        _add_identity(
            session,
            ids,
            Identity(
                kind=ANONYMOUS, value=anonymous, customer_id=owner, acquisition_channel=channel
            ),
        )
        await session.flush()
        return owner
    if anonymous_owner is None:
        _add_identity(
            session,
            ids,
            Identity(
                kind=ANONYMOUS, value=anonymous, customer_id=owner, acquisition_channel=channel
            ),
        )
        await session.flush()
    elif anonymous_owner != owner:
        if await ids.is_customer(anonymous_owner):
            # A shared device: the anonymous id now follows whoever identified last.
            identity = await ids.identity(ANONYMOUS, anonymous)
            assert identity is not None
            identity.customer_id = owner
            session.add(identity)
        else:
            if before_merge is not None:
                await before_merge()
            await _fold(session, owner, anonymous_owner, "identify", topic)
            ids.forget()
    return owner


def _add_identity(session: AsyncSession, ids: Directory, identity: Identity) -> None:
    store.add(session, identity)
    ids.learn(identity)


async def _fold(session: AsyncSession, survivor: str, merged: str, reason: str, topic: str) -> None:
    """Merge `merged` into `survivor`, where the survivor may itself be unidentified."""
    if await _is_customer(session, survivor):
        await service.merge_customers(
            session, survivor, merged, reason=reason, actor="tracking", topic=topic
        )
        return
    # Two ids of one unidentified visitor: no customer row on either side yet.
    await store.repoint_identities(session, merged, survivor)
    store.add(session, Identity(kind=service.ALIAS, value=merged, customer_id=survivor))
    await store.move_rows(session, merged, survivor)
    await service.fold_visitor_consents(session, survivor, merged)
    await session.flush()
    service.publish(
        session,
        CustomerMerged(customer_id=survivor, merged_customer_id=merged, reason="identify"),
        topic,
    )


def all_traits(message: Message) -> dict[str, Any]:
    """An identify's traits: `context.traits` (where RudderStack's SDKs put them), then
    top-level `traits` (Segment's), which win where both name a trait."""
    context = message.context.get("traits")
    return {**(context if isinstance(context, dict) else {}), **message.traits}


def custom_traits(traits: dict[str, Any]) -> dict[str, Any]:
    """The traits that no customer column holds."""
    return {key: value for key, value in traits.items() if key not in COLUMN_TRAITS}


def merge_traits(kept: dict[str, Any], new: dict[str, Any], where: str) -> dict[str, Any]:
    """`kept` updated with `new` (null removes a trait), refused past the documented bounds."""
    merged = dict(kept)
    for key, value in new.items():
        if len(key) > CUSTOM_TRAIT_KEY_MAX_CHARS:
            raise BadTrackingCall(
                f"{where}: trait names are at most {CUSTOM_TRAIT_KEY_MAX_CHARS} characters"
            )
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = value
    if len(merged) > CUSTOM_TRAITS_MAX_KEYS:
        raise BadTrackingCall(f"{where}: at most {CUSTOM_TRAITS_MAX_KEYS} custom traits are kept")
    if len(json.dumps(merged, default=str).encode()) > CUSTOM_TRAITS_MAX_BYTES:
        raise BadTrackingCall(
            f"{where}: custom traits are kept up to {CUSTOM_TRAITS_MAX_BYTES // 1024} KB of JSON"
        )
    # Stored as JSON: what does not survive a round trip (dates) is kept as its text.
    return json.loads(json.dumps(merged, default=str))


async def join_account(session: AsyncSession, message: Message, customer_id: str) -> None:
    """A group call: the account (`groupId`, its traits) exists and the caller belongs to it."""
    account_id = str(message.groupId)
    account = await store.get_account(session, account_id)
    if account is None:
        account = Account(id=account_id)
    account.traits = merge_traits(account.traits or {}, message.traits, "the account's traits")
    name = message.traits.get("name")
    if isinstance(name, str) and name.strip():
        account.name = name.strip()[:200]
    account.updated_at = utcnow()
    store.add(session, account)
    joined = {m.account_id for m in await store.memberships_of(session, customer_id)}
    if account_id not in joined:
        store.add(session, AccountMember(customer_id=customer_id, account_id=account_id))


def account_joined(message: Message, customer_id: str) -> AccountJoined:
    """The group call on the log, so sales links the customer to the account."""
    name = message.traits.get("name")
    return AccountJoined(
        customer_id=customer_id,
        occurred_at=_when(message),
        account_id=str(message.groupId),
        name=name.strip()[:200] if isinstance(name, str) and name.strip() else None,
        traits=message.traits,
    )


def _traits(traits: dict[str, Any]) -> dict[str, Any]:
    """Segment's reserved traits as customer fields; values that do not fit are skipped."""
    address: dict[str, Any] = traits["address"] if isinstance(traits.get("address"), dict) else {}
    first, last = (
        traits.get("firstName", traits.get("first_name")),
        traits.get("lastName", traits.get("last_name")),
    )
    if (first is None or last is None) and isinstance(traits.get("name"), str):
        parts = traits["name"].strip().split(" ", 1)
        first = first or parts[0]
        last = last or (parts[1] if len(parts) > 1 else None)
    found: dict[str, Any] = {
        "first_name": first,
        "last_name": last,
        "gender": traits.get("gender"),
        "income_band": traits.get("income_band", traits.get("incomeBand")),
        "education": traits.get("education"),
        "city": address.get("city", traits.get("city")),
        "country": address.get("country", traits.get("country")),
    }
    fields: dict[str, Any] = {}
    for name, value in found.items():
        if isinstance(value, str) and value.strip() and len(value.strip()) <= TRAIT_LIMITS[name]:
            fields[name] = value.strip()
    if "country" in fields:
        country = fields.pop("country")
        if len(country) == 2 and country.isalpha():
            fields["country"] = country.upper()
    email = traits.get("email")
    if isinstance(email, str):
        with contextlib.suppress(ValidationError):
            fields["email"] = _email.validate_python(email.strip()).lower()
    phone = traits.get("phone")
    if isinstance(phone, str) and E164.match(phone.strip()):
        fields["phone"] = phone.strip()
    birthday = traits.get("birthday", traits.get("birth_date"))
    if isinstance(birthday, str):
        try:
            born = date.fromisoformat(birthday[:10])
            if born <= utcnow().date():
                fields["birth_date"] = born
        except ValueError:
            pass
    for name, key in (("external_ids", "externalIds"), ("social_handles", "socialHandles")):
        value = traits.get(name, traits.get(key))
        if isinstance(value, dict):
            cleaned = {str(k): str(v) for k, v in value.items() if v not in (None, "")}
            if cleaned:
                fields[name] = cleaned
    return fields


async def identify(
    session: AsyncSession, message: Message, *, channel: str | None, topic: str
) -> str:
    """Link the caller's ids to one customer, learn the traits, merge what they reveal."""
    owner = await resolve_caller(session, message, channel=channel, topic=topic)
    if await service.is_erased(session, owner):
        return owner
    if channel is None and message.anonymousId not in (None, ""):
        # First touch: the campaign that brought the visitor before they identified.
        visit = await store.get_identity(session, ANONYMOUS, str(message.anonymousId))
        channel = visit.acquisition_channel if visit is not None else None
    traits = all_traits(message)
    fields = _traits(traits)
    custom = custom_traits(traits)
    email = fields.pop("email", None)
    external_ids = fields.pop("external_ids", None)
    if not await _is_customer(session, owner):
        holder, reason = await _holder(session, email, external_ids)
        if holder is not None:
            survivor = await service.resolve(session, holder.id)
            await _fold(session, survivor, owner, reason, topic)
            owner = survivor
        elif email:
            customer = Customer(email=email, acquisition_channel=channel, **fields)
            customer.traits = merge_traits({}, custom, "traits")
            customer.created_at = customer.updated_at = _when(message)
            if external_ids:
                customer.external_ids = external_ids
            store.add(session, customer)
            await session.flush()
            service.publish(
                session,
                CustomerRegistered(
                    customer_id=customer.id,
                    occurred_at=customer.created_at,
                    **event_fields(customer),
                ),
                topic,
            )
            if customer.traits:
                # customer.registered has no traits: they follow as a change.
                service.publish(
                    session,
                    CustomerUpdated(customer_id=customer.id, changes={"traits": customer.traits}),
                    topic,
                )
            await _fold(session, customer.id, owner, "identify", topic)
            return customer.id
        else:
            return owner  # nothing to know them by yet
    customer = await service.active_customer(session, owner)
    if email and email != customer.email:
        holder = await store.find_by_email(session, email)
        if holder is not None:
            other = await service.resolve(session, holder.id)
            if other != customer.id:
                customer = await _merge_pair(session, customer.id, other, "email", topic)
        else:
            fields["email"] = email
    if external_ids:
        merged_ids = {**(customer.external_ids or {}), **external_ids}
        for holder in await store.find_by_external_ids(session, external_ids):
            if holder.id != customer.id:
                customer = await _merge_pair(session, customer.id, holder.id, "external_id", topic)
        if merged_ids != customer.external_ids:
            fields["external_ids"] = {**(customer.external_ids or {}), **external_ids}
    if customer.acquisition_channel is None and channel:
        fields["acquisition_channel"] = channel
    if custom:
        fields["traits"] = merge_traits(customer.traits or {}, custom, "the customer's traits")
    service.apply_changes(session, customer, fields, topic)
    return customer.id


async def _holder(
    session: AsyncSession, email: str | None, external_ids: dict[str, str] | None
) -> tuple[Customer | None, str]:
    """The customer who already has this e-mail, else the oldest with one of these ids."""
    if email and (holder := await store.find_by_email(session, email)) is not None:
        return holder, "email"
    holders = await store.find_by_external_ids(session, external_ids or {})
    if holders:
        return min(holders, key=lambda c: aware(c.created_at)), "external_id"
    return None, "email"


async def _merge_pair(
    session: AsyncSession, first: str, second: str, reason: str, topic: str
) -> Customer:
    """Merge two customers found to be one person: the older record survives."""
    a, b = await store.get_customer(session, first), await store.get_customer(session, second)
    assert a is not None and b is not None
    survivor, merged = (a, b) if aware(a.created_at) <= aware(b.created_at) else (b, a)
    await service.merge_customers(
        session, survivor.id, merged.id, reason=reason, actor="tracking", topic=topic
    )
    return survivor


# --- events -----------------------------------------------------------------------------


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
    session: AsyncSession,
    messages: list[Message],
    *,
    topic: str,
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
    seen = await store.seen_message_ids(session, given) if given else set()
    held: list[TrackedMessage | Event] = []
    ids = Directory(session)
    settled: set[str] = set()  # customers whose acquisition channel is known to be set
    refusals: dict[str, str] = {}  # who refused sale and sharing, and how
    applied = 0
    for index, message in enumerate(messages):
        if message.messageId:
            if message.messageId in seen:
                continue
        else:
            message.messageId = service.new_message_id()
        seen.add(message.messageId)
        channel = acquisition_channel(message.context)
        if message.type in ("identify", "alias"):
            await _release(session, held, topic)
            handler = identify if message.type == "identify" else alias
            customer_id = await handler(session, message, channel=channel, topic=topic)
            ids.forget()
            if await service.is_erased(session, customer_id):
                continue
            store.add(
                session, TrackedMessage(message_id=message.messageId, customer_id=customer_id)
            )
            _note_refusal(refusals, message, customer_id, gpc, sharing_categories)
            applied += 1
            continue
        if not ids.loaded:
            await ids.load(_run_from(messages, index))
        customer_id = await resolve_caller(
            session,
            message,
            channel=channel,
            topic=topic,
            known=ids,
            before_merge=lambda: _release(session, held, topic),
        )
        if await ids.is_erased(customer_id):
            continue  # late calls about an erased customer are dropped, leaving no trace
        held.append(TrackedMessage(message_id=message.messageId, customer_id=customer_id))
        _note_refusal(refusals, message, customer_id, gpc, sharing_categories)
        applied += 1
        if channel and customer_id not in settled and await ids.is_customer(customer_id):
            # The channel is set once: after this check it is set, whatever it was.
            settled.add(customer_id)
            customer = await service.active_customer(session, customer_id)
            if customer.acquisition_channel is None:
                await _release(session, held, topic)
                service.apply_changes(session, customer, {"acquisition_channel": channel}, topic)
        if message.type == "group":
            await join_account(session, message, customer_id)
            held.append(account_joined(message, customer_id))
            continue
        held.extend(events_for(message, customer_id, _when(message), currency=currency))
    await _release(session, held, topic)
    # After the batch: an id that an identify in it merged away resolves to its survivor.
    await service.refuse_sharing(session, refusals, topic=topic)
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


async def _release(session: AsyncSession, held: list[TrackedMessage | Event], topic: str) -> None:
    """Write the held rows: the messageIds applied, and the events in order, in bulk."""
    if not held:
        return
    for item in held:
        if isinstance(item, TrackedMessage):
            store.add(session, item)
    await service.publish_all(session, [item for item in held if isinstance(item, Event)], topic)
    held.clear()


async def alias(session: AsyncSession, message: Message, *, channel: str | None, topic: str) -> str:
    """`previousId` and `userId` are one person: fold the previous id's activity in."""
    owner = await resolve_caller(session, message, channel=channel, topic=topic)
    previous = str(message.previousId)
    before = await _owner_of_identity(session, USER, previous) or await _owner_of_identity(
        session, ANONYMOUS, previous
    )
    if before is not None and before != owner and not await _is_customer(session, before):
        await _fold(session, owner, before, "identify", topic)
    return owner
