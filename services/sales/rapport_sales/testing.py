"""In-memory fakes of sales' stores, for unit tests of the use cases: the same queries as
the SQL stores, answered with plain Python over rows kept by primary key.

`FakeSalesUnitOfWork` puts them on one set of rows (a contact link made through one domain
is seen by another's query) with a `FakeOutbox`; mypy checks it is a `SalesUnitOfWork`, so
a fake that lacks a query, or answers it with another signature, fails the lint.
"""

from collections import defaultdict
from collections.abc import Collection, Iterable, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, TypeVar

from rapport_events.pagination import decode_cursor
from rapport_events.testing.unit_of_work import FakeStore, FakeUnitOfWork, Rows
from rapport_sales.accounts.models import SalesAccount, SalesContact
from rapport_sales.activities.models import SalesActivity, SalesActivityContact, SalesDocument
from rapport_sales.activities.store import ActivityFilter
from rapport_sales.customers.models import ErasedCustomer, SalesCustomer
from rapport_sales.opportunities.models import (
    SalesOpportunity,
    SalesOpportunityContact,
    SalesPipeline,
    SalesStage,
    SalesStageChange,
)
from rapport_sales.opportunities.store import OpportunityFilter
from rapport_sales.reports.store import Cell
from rapport_sales.shared import aware, page_of

if TYPE_CHECKING:
    from rapport_sales.unit_of_work import SalesUnitOfWork

Row = TypeVar("Row", SalesAccount, SalesActivity, SalesOpportunity)


def newest_first(
    rows: Iterable[Row], limit: int, cursor: str | None
) -> tuple[list[Row], str | None]:
    """What `SqlSalesStore.newest_first` makes of a query, on rows in memory."""
    ordered = sorted(rows, key=lambda row: (aware(row.created_at), row.id), reverse=True)
    if cursor is not None:
        at, last_id = decode_cursor(cursor, datetime, str)
        ordered = [row for row in ordered if (aware(row.created_at), row.id) < (at, last_id)]
    return page_of(ordered[: limit + 1], limit)


LinkRow = TypeVar("LinkRow", SalesContact, SalesOpportunityContact, SalesActivityContact)


def move_links(rows: Rows, model: type[LinkRow], duplicate: str, survivor: str) -> None:
    """What `SqlSalesStore.move_links` does to a link table, on rows in memory."""
    kept = {_other_keys(row) for row in rows.where(model, lambda r: r.customer_id == survivor)}
    for row in rows.where(model, lambda r: r.customer_id == duplicate):
        rows.delete(row)
        if _other_keys(row) not in kept:
            rows.add(model(**{**row.model_dump(), "customer_id": survivor}))


def _other_keys(
    row: SalesContact | SalesOpportunityContact | SalesActivityContact,
) -> tuple[Any, ...]:
    names = [c.name for c in type(row).__table__.primary_key.columns]  # type: ignore[union-attr]
    return tuple(getattr(row, name) for name in names if name != "customer_id")


class FakeAccountStore(FakeStore):
    async def get_account(self, account_id: str) -> SalesAccount | None:
        return self.rows.get(SalesAccount, account_id)

    async def list_accounts(
        self, owner: str | None, q: str | None, limit: int, cursor: str | None
    ) -> tuple[list[SalesAccount], str | None]:
        needle = (q or "").lower()

        def matches(account: SalesAccount) -> bool:
            if owner and account.owner != owner:
                return False
            name, domain = account.name.lower(), (account.domain or "").lower()
            return not needle or needle in name or needle in domain

        return newest_first(self.rows.where(SalesAccount, matches), limit, cursor)

    async def accounts_by_external_id(
        self, external_ids: Collection[str]
    ) -> dict[str | None, SalesAccount]:
        found = self.rows.where(SalesAccount, lambda account: account.external_id in external_ids)
        return {account.external_id: account for account in found}

    async def account_id_by_domain(self, domains: Collection[str]) -> str | None:
        found = self.rows.where(SalesAccount, lambda account: account.domain in domains)
        return min(found, key=lambda account: aware(account.created_at)).id if found else None

    async def contacts_with_people(
        self, account_id: str
    ) -> list[tuple[SalesContact, SalesCustomer | None]]:
        links = self.rows.where(SalesContact, lambda link: link.account_id == account_id)
        links.sort(key=lambda link: (aware(link.linked_at), link.customer_id))
        return [(link, self.rows.get(SalesCustomer, link.customer_id)) for link in links]

    async def get_contact(self, account_id: str, customer_id: str) -> SalesContact | None:
        return self.rows.get(SalesContact, account_id, customer_id)

    async def contact_ids_among(self, account_id: str, customer_ids: Collection[str]) -> set[str]:
        return {c for a, c in await self.contact_links_of(customer_ids) if a == account_id}

    async def contact_links_of(self, customer_ids: Collection[str]) -> set[tuple[str, str]]:
        links = self.rows.where(SalesContact, lambda link: link.customer_id in customer_ids)
        return {(link.account_id, link.customer_id) for link in links}

    async def contacts_of(self, customer_id: str) -> list[SalesContact]:
        return self.rows.where(SalesContact, lambda link: link.customer_id == customer_id)

    async def move_contacts(self, duplicate: str, survivor: str) -> None:
        move_links(self.rows, SalesContact, duplicate, survivor)

    async def delete_contacts_of(self, customer_id: str) -> None:
        for link in self.rows.where(SalesContact, lambda link: link.customer_id == customer_id):
            self.rows.delete(link)

    async def delete_contact(self, account_id: str, customer_id: str) -> int:
        link = self.rows.get(SalesContact, account_id, customer_id)
        if link is None:
            return 0
        self.rows.delete(link)
        return 1


class FakeCustomerStore(FakeStore):
    async def get_customer(self, customer_id: str) -> SalesCustomer | None:
        return self.rows.get(SalesCustomer, customer_id)

    async def customers_among(self, ids: Collection[str]) -> dict[str, SalesCustomer]:
        found = self.rows.where(SalesCustomer, lambda person: person.customer_id in ids)
        return {person.customer_id: person for person in found}

    async def known_ids_among(self, ids: Collection[str]) -> set[str]:
        return set(await self.customers_among(ids))

    async def customer_ids_by_email(self, addresses: Collection[str]) -> dict[str, str]:
        found = self.rows.where(SalesCustomer, lambda person: person.email in addresses)
        return {person.email: person.customer_id for person in found if person.email}

    async def tombstone_of(self, customer_id: str) -> ErasedCustomer | None:
        return self.rows.get(ErasedCustomer, customer_id)

    async def erased_among(self, ids: Collection[str]) -> set[str]:
        return {row.customer_id for row in self.rows.all(ErasedCustomer) if row.customer_id in ids}


class FakeOpportunityStore(FakeStore):
    async def get_pipeline(self, pipeline_id: str) -> SalesPipeline | None:
        return self.rows.get(SalesPipeline, pipeline_id)

    async def pipeline_named(self, name: str) -> SalesPipeline | None:
        found = self.rows.where(SalesPipeline, lambda pipeline: pipeline.name == name)
        return found[0] if found else None

    async def all_pipelines(self) -> list[SalesPipeline]:
        return sorted(self.rows.all(SalesPipeline), key=lambda pipeline: pipeline.name)

    async def stages_of_pipeline(self, pipeline_id: str) -> list[SalesStage]:
        stages = self.rows.where(SalesStage, lambda stage: stage.pipeline_id == pipeline_id)
        return sorted(stages, key=lambda stage: stage.position)

    async def get_opportunity(self, opportunity_id: str) -> SalesOpportunity | None:
        return self.rows.get(SalesOpportunity, opportunity_id)

    async def list_opportunities(
        self, where: OpportunityFilter, limit: int, cursor: str | None
    ) -> tuple[list[SalesOpportunity], str | None]:
        wanted = {name: value for name, value in vars(where).items() if value is not None}

        def matches(deal: SalesOpportunity) -> bool:
            return all(getattr(deal, name) == value for name, value in wanted.items())

        return newest_first(self.rows.where(SalesOpportunity, matches), limit, cursor)

    async def opportunities_of_customers(
        self, customer_ids: Collection[str]
    ) -> list[SalesOpportunity]:
        return self.rows.where(SalesOpportunity, lambda deal: deal.customer_id in customer_ids)

    async def move_deals(self, duplicate: str, survivor: str) -> None:
        for deal in await self.opportunities_of_customers([duplicate]):
            deal.customer_id = survivor

    async def contacts_of_customer(self, customer_id: str) -> list[SalesOpportunityContact]:
        return self.rows.where(
            SalesOpportunityContact, lambda link: link.customer_id == customer_id
        )

    async def move_contacts(self, duplicate: str, survivor: str) -> None:
        move_links(self.rows, SalesOpportunityContact, duplicate, survivor)

    async def contact_ids_of(self, opportunity_id: str) -> list[str]:
        links = self.rows.where(
            SalesOpportunityContact, lambda link: link.opportunity_id == opportunity_id
        )
        return [link.customer_id for link in links]

    async def unlink_customers(self, customer_ids: Collection[str]) -> None:
        for link in self.rows.where(
            SalesOpportunityContact, lambda link: link.customer_id in customer_ids
        ):
            self.rows.delete(link)

    async def stage_history(self, opportunity_id: str) -> list[SalesStageChange]:
        changes = self.rows.where(
            SalesStageChange, lambda change: change.opportunity_id == opportunity_id
        )
        return sorted(changes, key=lambda change: change.id or 0)

    async def stage_changes_of_account(
        self, account_id: str, limit: int
    ) -> list[tuple[SalesStageChange, SalesOpportunity]]:
        deals = {
            deal.id: deal
            for deal in self.rows.where(
                SalesOpportunity, lambda deal: deal.account_id == account_id
            )
        }
        changes = self.rows.where(SalesStageChange, lambda change: change.opportunity_id in deals)
        changes.sort(key=lambda change: (aware(change.changed_at), change.id or 0), reverse=True)
        return [(change, deals[change.opportunity_id]) for change in changes[:limit]]


class FakeActivityStore(FakeStore):
    async def get_activity(self, activity_id: str) -> SalesActivity | None:
        return self.rows.get(SalesActivity, activity_id)

    async def get_document(self, document_id: str) -> SalesDocument | None:
        return self.rows.get(SalesDocument, document_id)

    async def overdue_tasks(
        self, owner: str | None, now: datetime, limit: int
    ) -> list[SalesActivity]:
        def overdue(task: SalesActivity) -> bool:
            return (
                task.kind == "task"
                and task.done_at is None
                and task.due_at is not None
                and aware(task.due_at) < now
                and (owner is None or task.owner == owner)
            )

        tasks = self.rows.where(SalesActivity, overdue)
        tasks.sort(key=lambda task: (aware(task.due_at or now), task.id))
        return tasks[:limit]

    async def contact_links_of(self, activity_ids: Collection[str]) -> list[SalesActivityContact]:
        return self.rows.where(SalesActivityContact, lambda link: link.activity_id in activity_ids)

    def _linked_to(self, customer_ids: Collection[str]) -> set[str]:
        links = self.rows.where(SalesActivityContact, lambda link: link.customer_id in customer_ids)
        return {link.activity_id for link in links}

    async def list_activities(
        self, where: ActivityFilter, limit: int, cursor: str | None
    ) -> tuple[list[SalesActivity], str | None]:
        about_account: set[str] = set()
        if where.account_id is not None:
            contacts = self.rows.where(SalesContact, lambda c: c.account_id == where.account_id)
            about_account = self._linked_to({contact.customer_id for contact in contacts})
        about_customer = self._linked_to({where.customer_id} if where.customer_id else set())

        def matches(activity: SalesActivity) -> bool:
            if where.account_id is not None and not (
                activity.account_id == where.account_id or activity.id in about_account
            ):
                return False
            if where.customer_id is not None and activity.id not in about_customer:
                return False
            return where.kind is None or activity.kind == where.kind

        return newest_first(self.rows.where(SalesActivity, matches), limit, cursor)

    async def activities_about(
        self, customer_ids: Collection[str], emails: Collection[str]
    ) -> list[SalesActivity]:
        linked = self._linked_to(customer_ids)
        return self.rows.where(
            SalesActivity,
            lambda activity: (
                activity.id in linked or any(address in emails for address in activity.addresses)
            ),
        )

    async def documents_of_people_alone(self, customer_ids: Collection[str]) -> list[SalesActivity]:
        linked = self._linked_to(customer_ids)
        return self.rows.where(
            SalesActivity,
            lambda activity: (
                activity.kind == "document"
                and activity.account_id is None
                and activity.id in linked
            ),
        )

    async def linked_to(self, customer_id: str) -> list[SalesActivity]:
        linked = self._linked_to([customer_id])
        return self.rows.where(SalesActivity, lambda activity: activity.id in linked)

    async def documents_linked_to(self, customer_id: str) -> list[SalesDocument]:
        linked = self._linked_to([customer_id])
        return self.rows.where(SalesDocument, lambda document: document.id in linked)

    async def move_contacts(self, duplicate: str, survivor: str) -> None:
        move_links(self.rows, SalesActivityContact, duplicate, survivor)

    async def unlink_customers(self, customer_ids: Collection[str]) -> None:
        for link in self.rows.where(
            SalesActivityContact, lambda link: link.customer_id in customer_ids
        ):
            self.rows.delete(link)


class FakeReportStore(FakeStore):
    """The reports' grouped queries, grouped here as the database groups them."""

    def _deals(self, **equal: Any) -> list[SalesOpportunity]:
        return self.rows.where(
            SalesOpportunity,
            lambda deal: all(getattr(deal, name) == value for name, value in equal.items()),
        )

    async def open_by_stage_and_owner(self, pipeline_id: str, owner: str | None) -> Sequence[Cell]:
        deals = self._deals(pipeline_id=pipeline_id, status="open")
        deals = [deal for deal in deals if owner is None or deal.owner == owner]
        return _sums(deals, lambda deal: (deal.stage, deal.owner, deal.currency))

    async def open_by_close_day(self, end: date, owner: str | None) -> Sequence[Cell]:
        deals = [
            deal
            for deal in self._deals(status="open")
            if deal.expected_close_date is not None
            and deal.expected_close_date < end
            and (owner is None or deal.owner == owner)
        ]
        return _sums(deals, lambda deal: (deal.expected_close_date, deal.currency))

    async def closed_by_owner(
        self, start: datetime | None, end: datetime | None, owner: str | None
    ) -> Sequence[Cell]:
        groups: dict[str | None, list[SalesOpportunity]] = defaultdict(list)
        for deal in self.rows.all(SalesOpportunity):
            closed = aware(deal.closed_at) if deal.closed_at else None
            if (
                deal.status in ("won", "lost")
                and closed is not None
                and (start is None or closed >= start)
                and (end is None or closed < end)
                and (owner is None or deal.owner == owner)
            ):
                groups[deal.owner].append(deal)
        return [_closed(name, deals) for name, deals in groups.items()]

    async def dated_deals_opened_by(self, as_of: datetime, currency: str) -> list[SalesOpportunity]:
        return [
            deal
            for deal in self._deals(currency=currency)
            if aware(deal.created_at) <= as_of and deal.expected_close_date is not None
        ]

    async def stage_probabilities(self) -> dict[tuple[str, str], Decimal]:
        return {
            (stage.pipeline_id, stage.key): stage.probability for stage in self.rows.all(SalesStage)
        }

    async def stages_at(self, opportunity_ids: list[str], as_of: datetime) -> dict[str, str]:
        changes = self.rows.where(
            SalesStageChange,
            lambda change: (
                change.opportunity_id in opportunity_ids and aware(change.changed_at) <= as_of
            ),
        )
        changes.sort(key=lambda change: (aware(change.changed_at), change.id or 0))
        return {change.opportunity_id: change.to_stage for change in changes}

    async def won_since(
        self, since: datetime, currency: str
    ) -> list[tuple[datetime | None, Decimal]]:
        return [
            (deal.closed_at, deal.amount)
            for deal in self._deals(status="won", currency=currency)
            if deal.closed_at is not None and aware(deal.closed_at) >= since
        ]


def _sums(deals: list[SalesOpportunity], key: Any) -> list[Cell]:
    """(*key, count, amount, weighted) per distinct key, as a GROUP BY gives them."""
    groups: dict[tuple[Any, ...], list[SalesOpportunity]] = defaultdict(list)
    for deal in deals:
        groups[key(deal)].append(deal)
    return [
        (
            *group,
            len(members),
            sum((deal.amount for deal in members), Decimal(0)),
            sum((deal.amount * deal.probability for deal in members), Decimal(0)),
        )
        for group, members in groups.items()
    ]


def _closed(owner: str | None, deals: list[SalesOpportunity]) -> Cell:
    won = [deal for deal in deals if deal.status == "won"]
    days = [
        (aware(deal.closed_at) - aware(deal.created_at)).total_seconds() / 86400
        for deal in deals
        if deal.closed_at is not None
    ]
    won_amount = sum((deal.amount for deal in won), Decimal(0))
    return (owner, len(won), len(deals) - len(won), won_amount, sum(days) / len(days))


# The `default` pipeline, as the first migration seeds every database with it.
DEFAULT_STAGES = (
    ("lead", "Lead", "0.1", "open"),
    ("qualified", "Qualified", "0.25", "open"),
    ("proposal", "Proposal", "0.5", "open"),
    ("negotiation", "Negotiation", "0.75", "open"),
    ("won", "Won", "1", "won"),
    ("lost", "Lost", "0", "lost"),
)


def default_pipeline() -> list[SalesPipeline | SalesStage]:
    rows: list[SalesPipeline | SalesStage] = [
        SalesPipeline(id="default", name="Default", created_at=datetime(2026, 1, 1, tzinfo=UTC))
    ]
    for position, (key, name, probability, outcome) in enumerate(DEFAULT_STAGES):
        rows.append(
            SalesStage(
                pipeline_id="default",
                key=key,
                name=name,
                position=position,
                probability=Decimal(probability),
                outcome=outcome,
            )
        )
    return rows


class FakeSalesUnitOfWork(FakeUnitOfWork):
    """Sales' stores over one set of rows (the default pipeline in them, as in a migrated
    database), and an outbox that records what was published."""

    def __init__(self) -> None:
        super().__init__()
        self.rows.extend(default_pipeline())
        self.accounts = FakeAccountStore(self.rows)
        self.customers = FakeCustomerStore(self.rows)
        self.opportunities = FakeOpportunityStore(self.rows)
        self.activities = FakeActivityStore(self.rows)
        self.reports = FakeReportStore(self.rows)


if TYPE_CHECKING:
    # The fakes match the stores' Protocols structurally, member by member (subclassing a
    # Protocol would inherit its empty bodies, and a missing query would go unnoticed).
    _checked: SalesUnitOfWork = FakeSalesUnitOfWork()
