"""Who a tracking call is about: identities, traits, accounts, and identify (which merges
the duplicates it uncovers). Every step takes the request's `ProfileUnitOfWork`."""

import hashlib
from collections.abc import Awaitable, Callable, Sequence

from rapport_events import customer_ids
from rapport_events.base import utcnow
from rapport_events.types import (
    AccountJoined,
    CustomerMerged,
    CustomerRegistered,
    CustomerUpdated,
)
from rapport_profile.consents import service as consent_service
from rapport_profile.customers import service as customer_service
from rapport_profile.customers.models import Account, AccountMember, Customer, event_fields
from rapport_profile.identity import service as identity_service
from rapport_profile.identity.models import Identity
from rapport_profile.shared import aware
from rapport_profile.tracking import service
from rapport_profile.tracking import traits as tracking_traits
from rapport_profile.tracking.parsing import ANONYMOUS, USER, Message
from rapport_profile.unit_of_work import ProfileUnitOfWork


def pseudo_id(kind: str, value: str) -> str:
    """The customer id of someone not identified yet (fits the log's 64-character key)."""
    prefix = "anon:" if kind == ANONYMOUS else "user:"
    if len(value) <= 58:
        return prefix + value
    return prefix + hashlib.sha256(value.encode()).hexdigest()[:40]


async def _owner_of_identity(uow: ProfileUnitOfWork, kind: str, value: str) -> str | None:
    identity = await uow.identity.get_identity(kind, value)
    if identity is None:
        return None
    # Erased or not: the caller tells an erased owner apart itself.
    return await uow.identity.survivor_of(identity.customer_id)


async def _is_customer(uow: ProfileUnitOfWork, customer_id: str) -> bool:
    customer = await uow.customers.get_customer(customer_id)
    return customer is not None and customer.status == "active"


async def _is_erased(uow: ProfileUnitOfWork, customer_id: str) -> bool:
    return await uow.gdpr.get_erasure(customer_id) is not None


class Directory:
    """Identities, aliases, erasures and customers as this transaction sees them.

    `load` reads what a run of messages refers to with a few queries, where resolving
    them one by one took several round trips per message; anything not loaded is read
    when asked for, then kept. Writes that change an answer teach it (`learn`) or make
    it start over (`forget`), so an answer is always what the database would say now.
    """

    def __init__(self, uow: ProfileUnitOfWork) -> None:
        self._uow = uow
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
        await self._load_identities(identity_service.ALIAS, users | pseudo | owners)
        named = users | pseudo | owners
        resolved = set((await customer_ids.owners_through_merges(named, self._aliases)).values())
        await self._load_customers(resolved)
        await self._load_erasures(named | resolved)

    async def _load_identities(self, kind: str, values: set[str]) -> None:
        wanted = {v for v in values if (kind, v) not in self._identities}
        if not wanted:
            return
        for value in wanted:
            self._identities[(kind, value)] = None
        for identity in await self._uow.identity.identities_among(kind, wanted):
            self._identities[(kind, identity.value)] = identity

    async def _load_customers(self, customer_ids: set[str]) -> None:
        wanted = {c for c in customer_ids if c not in self._customers}
        if not wanted:
            return
        for customer_id in wanted:
            self._customers[customer_id] = False
        for customer in await self._uow.customers.customers_among(wanted):
            self._customers[customer.id] = customer.status == "active"

    async def _load_erasures(self, customer_ids: set[str]) -> None:
        wanted = {c for c in customer_ids if c not in self._erased}
        if not wanted:
            return
        erased = await self._uow.gdpr.erased_among(wanted)
        for customer_id in wanted:
            self._erased[customer_id] = customer_id in erased

    async def identity(self, kind: str, value: str) -> Identity | None:
        if (kind, value) not in self._identities:
            self._identities[(kind, value)] = await self._uow.identity.get_identity(kind, value)
        return self._identities[(kind, value)]

    async def _aliases(self, customer_ids: set[str]) -> dict[str, str]:
        """The survivor of each of these ids merged away, from what is loaded or read now."""
        await self._load_identities(identity_service.ALIAS, customer_ids)
        aliases = {c: self._identities[(identity_service.ALIAS, c)] for c in customer_ids}
        return {c: alias.customer_id for c, alias in aliases.items() if alias is not None}

    async def survivor_of(self, customer_id: str) -> str:
        """The id that owns `customer_id` now, erased or not (as `survivor_of` of the store).

        A call about an erased customer must still be recognised as theirs, to be dropped.
        """
        owners = await customer_ids.owners_through_merges([customer_id], self._aliases)
        return owners[customer_id]

    async def owner_of_identity(self, kind: str, value: str) -> str | None:
        identity = await self.identity(kind, value)
        if identity is None:
            return None
        return await self.survivor_of(identity.customer_id)

    async def is_erased(self, customer_id: str) -> bool:
        if customer_id not in self._erased:
            self._erased[customer_id] = await _is_erased(self._uow, customer_id)
        return self._erased[customer_id]

    async def is_customer(self, customer_id: str) -> bool:
        """Whether `customer_id` is an active customer."""
        if customer_id not in self._customers:
            self._customers[customer_id] = await _is_customer(self._uow, customer_id)
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
    uow: ProfileUnitOfWork,
    message: Message,
    *,
    channel: str | None,
    known: Directory | None = None,
    before_merge: Callable[[], Awaitable[None]] | None = None,
) -> str:
    """The customer a message is about, linking its anonymous id to a known user id.

    `known` answers the lookups when the caller read them in bulk; `before_merge` runs
    before a merge, for a caller holding rows back that the merge must see and precede.
    """
    ids = known or Directory(uow)
    user = str(message.userId) if message.userId not in (None, "") else None
    anonymous = str(message.anonymousId) if message.anonymousId not in (None, "") else None
    owner: str | None = None
    if user is not None:
        # The caller drops what it has about an erased customer; nothing may link to it again.
        for erased in (user, pseudo_id(USER, user)):
            if await ids.is_erased(erased):
                return erased
        current = await ids.survivor_of(user)  # a merged customer's id still works
        if await ids.is_customer(current):
            owner = current
        else:
            owner = await ids.owner_of_identity(USER, user)
        if owner is None:
            # Not known yet: the user id joins the anonymous visitor's id when there is one.
            visitor = await ids.owner_of_identity(ANONYMOUS, anonymous) if anonymous else None
            owner = visitor or await ids.survivor_of(pseudo_id(USER, user))
            _add_identity(uow, ids, Identity(kind=USER, value=user, customer_id=owner))
            await uow.flush()
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
            uow,
            ids,
            Identity(
                kind=ANONYMOUS, value=anonymous, customer_id=owner, acquisition_channel=channel
            ),
        )
        await uow.flush()
        return owner
    if anonymous_owner is None:
        _add_identity(
            uow,
            ids,
            Identity(
                kind=ANONYMOUS, value=anonymous, customer_id=owner, acquisition_channel=channel
            ),
        )
        await uow.flush()
    elif anonymous_owner != owner:
        if await ids.is_customer(anonymous_owner):
            # A shared device: the anonymous id now follows whoever identified last.
            identity = await ids.identity(ANONYMOUS, anonymous)
            assert identity is not None
            identity.customer_id = owner
            uow.identity.add(identity)
        else:
            if before_merge is not None:
                await before_merge()
            await _fold(uow, owner, anonymous_owner, "identify")
            ids.forget()
    return owner


def _add_identity(uow: ProfileUnitOfWork, ids: Directory, identity: Identity) -> None:
    uow.identity.add(identity)
    ids.learn(identity)


async def _fold(uow: ProfileUnitOfWork, survivor: str, merged: str, reason: str) -> None:
    """Merge `merged` into `survivor`, where the survivor may itself be unidentified."""
    if await _is_customer(uow, survivor):
        await identity_service.merge(uow, survivor, merged, reason=reason, actor="tracking")
        return
    # Two ids of one unidentified visitor: no customer row on either side yet.
    await uow.identity.repoint_identities(merged, survivor)
    uow.identity.add(Identity(kind=identity_service.ALIAS, value=merged, customer_id=survivor))
    await uow.identity.move_rows(merged, survivor)
    await consent_service.fold_consents(uow, survivor, merged)
    await uow.flush()
    await uow.outbox.publish(
        [CustomerMerged(customer_id=survivor, merged_customer_id=merged, reason="identify")]
    )


async def join_account(uow: ProfileUnitOfWork, message: Message, customer_id: str) -> None:
    """A group call: the account (`groupId`, its traits) exists and the caller belongs to it."""
    account_id = str(message.groupId)
    account = await uow.customers.get_account(account_id)
    if account is None:
        account = Account(id=account_id)
    account.traits = tracking_traits.merge_traits(
        account.traits or {}, message.traits, "the account's traits"
    )
    name = message.traits.get("name")
    if isinstance(name, str) and name.strip():
        account.name = name.strip()[:200]
    account.updated_at = utcnow()
    uow.customers.add(account)
    joined = {m.account_id for m in await uow.customers.memberships_of(customer_id)}
    if account_id not in joined:
        uow.customers.add(AccountMember(customer_id=customer_id, account_id=account_id))


def account_joined(message: Message, customer_id: str) -> AccountJoined:
    """The group call on the log, so sales links the customer to the account."""
    name = message.traits.get("name")
    return AccountJoined(
        customer_id=customer_id,
        occurred_at=service._when(message),
        account_id=str(message.groupId),
        name=name.strip()[:200] if isinstance(name, str) and name.strip() else None,
        traits=message.traits,
    )


async def identify(uow: ProfileUnitOfWork, message: Message, *, channel: str | None) -> str:
    """Link the caller's ids to one customer, learn the traits, merge what they reveal."""
    owner = await resolve_caller(uow, message, channel=channel)
    if await _is_erased(uow, owner):
        return owner
    if channel is None and message.anonymousId not in (None, ""):
        # First touch: the campaign that brought the visitor before they identified.
        visit = await uow.identity.get_identity(ANONYMOUS, str(message.anonymousId))
        channel = visit.acquisition_channel if visit is not None else None
    traits = tracking_traits.all_traits(message)
    fields = tracking_traits._traits(traits)
    custom = tracking_traits.custom_traits(traits)
    email = fields.pop("email", None)
    external_ids = fields.pop("external_ids", None)
    if not await _is_customer(uow, owner):
        holder, reason = await _holder(uow, email, external_ids)
        if holder is not None:
            # Holders are customers, so not erased; the owner is what the fold needs.
            survivor = await uow.identity.survivor_of(holder.id)
            await _fold(uow, survivor, owner, reason)
            owner = survivor
        elif email:
            customer = Customer(email=email, acquisition_channel=channel, **fields)
            customer.traits = tracking_traits.merge_traits({}, custom, "traits")
            customer.created_at = customer.updated_at = service._when(message)
            if external_ids:
                customer.external_ids = external_ids
            await _register(uow, customer)
            await _fold(uow, customer.id, owner, "identify")
            return customer.id
        else:
            return owner  # nothing to know them by yet
    customer = customer_service.changeable(await uow.customers.lock_customer(owner), owner)
    if email and email != customer.email:
        holder = await uow.customers.find_by_email(email)
        if holder is not None:
            other = await uow.identity.survivor_of(holder.id)
            if other != customer.id:
                customer = await _merge_pair(uow, customer.id, other, "email")
        else:
            fields["email"] = email
    if external_ids:
        merged_ids = {**(customer.external_ids or {}), **external_ids}
        for holder in await uow.customers.find_by_external_ids(external_ids):
            if holder.id != customer.id:
                customer = await _merge_pair(uow, customer.id, holder.id, "external_id")
        if merged_ids != customer.external_ids:
            fields["external_ids"] = {**(customer.external_ids or {}), **external_ids}
    if customer.acquisition_channel is None and channel:
        fields["acquisition_channel"] = channel
    if custom:
        fields["traits"] = tracking_traits.merge_traits(
            customer.traits or {}, custom, "the customer's traits"
        )
    await customer_service.record_changes(uow, customer, fields)
    return customer.id


async def _register(uow: ProfileUnitOfWork, customer: Customer) -> None:
    """A new customer from an identify: customer.registered, then its traits as a change
    (customer.registered has no traits)."""
    uow.customers.add(customer)
    await uow.flush()
    events: list[CustomerRegistered | CustomerUpdated] = [
        CustomerRegistered(
            customer_id=customer.id, occurred_at=customer.created_at, **event_fields(customer)
        )
    ]
    if customer.traits:
        events.append(CustomerUpdated(customer_id=customer.id, changes={"traits": customer.traits}))
    await uow.outbox.publish(events)


async def _holder(
    uow: ProfileUnitOfWork, email: str | None, external_ids: dict[str, str] | None
) -> tuple[Customer | None, str]:
    """The customer who already has this e-mail, else the oldest with one of these ids."""
    if email and (holder := await uow.customers.find_by_email(email)) is not None:
        return holder, "email"
    holders = await uow.customers.find_by_external_ids(external_ids or {})
    if holders:
        return min(holders, key=lambda c: aware(c.created_at)), "external_id"
    return None, "email"


async def _merge_pair(uow: ProfileUnitOfWork, first: str, second: str, reason: str) -> Customer:
    """Merge two customers found to be one person: the older record survives."""
    a, b = await uow.customers.get_customer(first), await uow.customers.get_customer(second)
    assert a is not None and b is not None
    survivor, merged = (a, b) if aware(a.created_at) <= aware(b.created_at) else (b, a)
    await identity_service.merge(uow, survivor.id, merged.id, reason=reason, actor="tracking")
    return survivor
