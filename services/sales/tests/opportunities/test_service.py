"""The opportunities use cases against in-memory stores: stages, the events each change
publishes, the order a won deal records, and every refusal (which stores nothing)."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from rapport_events.base import utcnow
from rapport_events.types import (
    OpportunityCreated,
    OpportunityLost,
    OpportunityStageChanged,
    OpportunityWon,
    OrderCompleted,
)
from rapport_sales.accounts.models import SalesAccount, SalesContact
from rapport_sales.customers.models import SalesCustomer
from rapport_sales.errors import Conflict, InvalidRequest, NotFound
from rapport_sales.opportunities import service
from rapport_sales.opportunities.models import (
    OpportunityCreate,
    OpportunityLose,
    OpportunityPublic,
    OpportunityUpdate,
    OpportunityWin,
    PipelineCreate,
    SalesOpportunity,
)
from rapport_sales.testing import FakeSalesUnitOfWork


def an_account(uow: FakeSalesUnitOfWork, owner: str | None = "rep:grace") -> SalesAccount:
    now = utcnow()
    account = SalesAccount(name="Acme", owner=owner, created_at=now, updated_at=now)
    uow.rows.add(account)
    return account


def a_customer(uow: FakeSalesUnitOfWork, customer_id: str = "ada", **fields: Any) -> str:
    uow.rows.add(SalesCustomer(customer_id=customer_id, updated_at=utcnow(), **fields))
    return customer_id


async def a_deal(uow: FakeSalesUnitOfWork, **fields: Any) -> OpportunityPublic:
    fields.setdefault("account_id", an_account(uow).id)
    fields.setdefault("name", "20 espresso machines")
    fields.setdefault("amount", Decimal("12000.00"))
    return await service.create_opportunity(uow, OpportunityCreate(**fields), "EUR")


def stored(uow: FakeSalesUnitOfWork, deal: OpportunityPublic) -> SalesOpportunity:
    found = uow.rows.get(SalesOpportunity, deal.id)
    assert found is not None
    return found


class TestOpeningADeal:
    async def test_it_opens_in_the_first_stage_with_its_probability_and_is_published(
        self, uow: FakeSalesUnitOfWork
    ) -> None:
        deal = await a_deal(uow)

        assert (deal.stage, deal.probability, deal.status) == ("lead", Decimal("0.1"), "open")
        assert (deal.owner, deal.currency) == ("rep:grace", "EUR")
        assert [change.to_stage for change in deal.history] == ["lead"]
        [created] = uow.outbox.published(OpportunityCreated)
        assert (created.opportunity_id, created.stage, created.amount) == (
            deal.id,
            "lead",
            Decimal("12000.00"),
        )
        assert created.customer_id == f"account:{deal.account_id}"

    async def test_a_named_open_stage_and_currency_are_kept(self, uow: FakeSalesUnitOfWork) -> None:
        deal = await a_deal(uow, stage="proposal", currency="USD", owner="rep:alan")

        assert (deal.stage, deal.probability) == ("proposal", Decimal("0.5"))
        assert (deal.currency, deal.owner) == ("USD", "rep:alan")

    async def test_the_primary_contact_is_the_subject_and_every_person_a_contact(
        self, uow: FakeSalesUnitOfWork
    ) -> None:
        account = an_account(uow)
        ada, bob = a_customer(uow, "ada"), a_customer(uow, "bob")
        uow.rows.add(
            SalesContact(account_id=account.id, customer_id=bob, source="group", linked_at=utcnow())
        )

        deal = await a_deal(uow, account_id=account.id, customer_id=ada, contacts=[bob, ada])

        assert deal.contacts == ["ada", "bob"]
        assert uow.outbox.published(OpportunityCreated)[0].customer_id == "ada"
        links = {link.customer_id: (link.source, link.role) for link in uow.rows.all(SalesContact)}
        assert links == {"ada": ("manual", "opportunity"), "bob": ("group", None)}

    @pytest.mark.parametrize(
        ("person", "source"),
        [
            ({"last_campaign_id": "spring", "acquisition_channel": "search"}, "campaign:spring"),
            ({"acquisition_channel": "search"}, "channel:search"),
            ({}, None),
        ],
    )
    async def test_without_a_source_the_primary_contact_s_attribution_is_used(
        self, uow: FakeSalesUnitOfWork, person: dict[str, str], source: str | None
    ) -> None:
        deal = await a_deal(uow, customer_id=a_customer(uow, **person))

        assert deal.source == source

    async def test_a_given_source_wins_over_the_attribution(self, uow: FakeSalesUnitOfWork) -> None:
        ada = a_customer(uow, last_campaign_id="spring")

        deal = await a_deal(uow, customer_id=ada, source="referral")

        assert deal.source == "referral"

    @pytest.mark.parametrize(
        ("fields", "refusal"),
        [
            ({"stage": "won"}, InvalidRequest),
            ({"stage": "nope"}, InvalidRequest),
            ({"pipeline_id": "nope"}, NotFound),
            ({"account_id": "nope"}, NotFound),
            ({"customer_id": "nobody"}, InvalidRequest),
            ({"contacts": ["nobody"]}, InvalidRequest),
            ({"expected_close_date": (utcnow() - timedelta(days=2)).date()}, InvalidRequest),
        ],
    )
    async def test_refusals_store_and_publish_nothing(
        self, uow: FakeSalesUnitOfWork, fields: dict[str, Any], refusal: type[Exception]
    ) -> None:
        with pytest.raises(refusal):
            await a_deal(uow, **fields)

        assert uow.rows.all(SalesOpportunity) == []
        assert uow.outbox.events == []


class TestChangingADeal:
    async def test_a_new_open_stage_is_published_with_its_probability(
        self, uow: FakeSalesUnitOfWork
    ) -> None:
        deal = await a_deal(uow)

        moved = await service.update_opportunity(
            uow, deal.id, OpportunityUpdate(stage="negotiation")
        )

        assert (moved.stage, moved.probability) == ("negotiation", Decimal("0.75"))
        assert [(c.from_stage, c.to_stage) for c in moved.history] == [
            (None, "lead"),
            ("lead", "negotiation"),
        ]
        [changed] = uow.outbox.published(OpportunityStageChanged)
        assert (changed.from_stage, changed.to_stage, changed.probability) == (
            "lead",
            "negotiation",
            Decimal("0.75"),
        )

    async def test_fields_without_a_stage_change_publish_nothing(
        self, uow: FakeSalesUnitOfWork
    ) -> None:
        deal = await a_deal(uow)

        changed = await service.update_opportunity(
            uow, deal.id, OpportunityUpdate(stage="lead", amount=Decimal("900"), name=None)
        )

        assert (changed.amount, changed.name) == (Decimal("900"), "20 espresso machines")
        assert uow.outbox.types() == [OpportunityCreated.TYPE]

    async def test_a_closing_stage_is_refused_outside_win_and_lose(
        self, uow: FakeSalesUnitOfWork
    ) -> None:
        deal = await a_deal(uow)

        with pytest.raises(InvalidRequest, match="/win or /lose"):
            await service.update_opportunity(uow, deal.id, OpportunityUpdate(stage="won"))

    async def test_a_close_date_before_the_creation_is_refused(
        self, uow: FakeSalesUnitOfWork
    ) -> None:
        deal = await a_deal(uow)
        stored(uow, deal).created_at = utcnow() - timedelta(days=10)

        with pytest.raises(InvalidRequest, match="before the opportunity's creation"):
            await service.update_opportunity(
                uow,
                deal.id,
                OpportunityUpdate(expected_close_date=(utcnow() - timedelta(days=20)).date()),
            )

    async def test_an_unknown_deal_is_not_found(self, uow: FakeSalesUnitOfWork) -> None:
        with pytest.raises(NotFound):
            await service.update_opportunity(uow, "nope", OpportunityUpdate(name="x"))


class TestWinningADeal:
    async def test_a_win_publishes_the_stage_the_order_and_the_win_in_that_order(
        self, uow: FakeSalesUnitOfWork
    ) -> None:
        products = [{"product_id": "sku-x2", "name": "Barista X2", "price": "600", "quantity": 20}]
        deal = await a_deal(uow, customer_id=a_customer(uow), products=products)
        stored(uow, deal).created_at = utcnow() - timedelta(days=12)

        won = await service.win_opportunity(uow, deal.id, OpportunityWin())

        assert (won.status, won.stage, won.order_id) == ("won", "won", f"sales-{deal.id}")
        assert uow.outbox.types()[1:] == [
            OpportunityStageChanged.TYPE,
            OrderCompleted.TYPE,
            OpportunityWon.TYPE,
        ]
        [order] = uow.outbox.published(OrderCompleted)
        assert (order.customer_id, order.order_id, order.revenue) == (
            "ada",
            f"sales-{deal.id}",
            Decimal("12000.00"),
        )
        assert [(i.product_id, i.price, i.quantity) for i in order.items] == [
            ("sku-x2", Decimal("600"), 20)
        ]
        assert order.sales_channel == "sales"
        assert uow.outbox.published(OpportunityWon)[0].cycle_days == 12

    async def test_without_products_the_order_is_one_line_of_the_amount(
        self, uow: FakeSalesUnitOfWork
    ) -> None:
        deal = await a_deal(uow, customer_id=a_customer(uow))

        await service.win_opportunity(uow, deal.id, OpportunityWin())

        [line] = uow.outbox.published(OrderCompleted)[0].items
        assert (line.product_id, line.name, line.price) == (
            f"opportunity:{deal.id}",
            "20 espresso machines",
            Decimal("12000.00"),
        )

    async def test_a_win_without_an_order_needs_no_contact(self, uow: FakeSalesUnitOfWork) -> None:
        deal = await a_deal(uow)

        won = await service.win_opportunity(uow, deal.id, OpportunityWin(record_order=False))

        assert won.order_id is None
        assert uow.outbox.published(OrderCompleted) == []
        assert uow.outbox.published(OpportunityWon)[0].order_id is None

    async def test_an_order_without_a_primary_contact_is_refused(
        self, uow: FakeSalesUnitOfWork
    ) -> None:
        deal = await a_deal(uow)

        with pytest.raises(InvalidRequest, match="primary contact"):
            await service.win_opportunity(uow, deal.id, OpportunityWin())
        assert stored(uow, deal).status == "open"


class TestLosingADeal:
    async def test_a_loss_keeps_the_reason_and_publishes_it(self, uow: FakeSalesUnitOfWork) -> None:
        deal = await a_deal(uow)

        lost = await service.lose_opportunity(uow, deal.id, OpportunityLose(reason="price"))

        assert (lost.status, lost.stage, lost.probability) == ("lost", "lost", Decimal("0"))
        assert stored(uow, deal).lost_reason == "price"
        assert uow.outbox.types()[1:] == [OpportunityStageChanged.TYPE, OpportunityLost.TYPE]
        assert uow.outbox.published(OpportunityLost)[0].reason == "price"

    async def test_a_closed_deal_cannot_change_again(self, uow: FakeSalesUnitOfWork) -> None:
        deal = await a_deal(uow)
        await service.lose_opportunity(uow, deal.id, OpportunityLose(reason="price"))
        published = len(uow.outbox.events)

        with pytest.raises(Conflict, match="already lost"):
            await service.win_opportunity(uow, deal.id, OpportunityWin(record_order=False))
        with pytest.raises(Conflict):
            await service.update_opportunity(uow, deal.id, OpportunityUpdate(name="again"))
        assert len(uow.outbox.events) == published


def a_closed_deal(opened: datetime, closed: datetime) -> SalesOpportunity:
    return SalesOpportunity(
        pipeline_id="default",
        account_id="a",
        name="n",
        amount=Decimal(1),
        currency="EUR",
        stage="won",
        probability=Decimal(1),
        created_at=opened,
        updated_at=opened,
        closed_at=closed,
    )


class TestCycleDays:
    OPENED = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)

    def test_whole_days_from_opening_to_closing(self) -> None:
        deal = a_closed_deal(self.OPENED, self.OPENED + timedelta(days=3, hours=1))

        assert service.cycle_days(deal) == 3

    def test_a_deal_won_just_after_midnight_took_no_day(self) -> None:
        late = datetime(2026, 3, 1, 23, 59, tzinfo=UTC)

        assert service.cycle_days(a_closed_deal(late, late + timedelta(minutes=2))) == 0

    def test_a_deal_still_short_of_a_day_counts_none(self) -> None:
        closed = self.OPENED + timedelta(hours=23, minutes=59)

        assert service.cycle_days(a_closed_deal(self.OPENED, closed)) == 0


class TestPipelines:
    STAGES = [
        {"key": "met", "name": "Met", "probability": "0.3"},
        {"key": "signed", "name": "Signed", "probability": "1", "outcome": "won"},
        {"key": "gone", "name": "Gone", "probability": "0", "outcome": "lost"},
    ]

    async def test_a_pipeline_keeps_its_stages_in_order(self, uow: FakeSalesUnitOfWork) -> None:
        made = await service.create_pipeline(
            uow, PipelineCreate(name="Partners", stages=self.STAGES)
        )

        assert [stage.key for stage in made.stages] == ["met", "signed", "gone"]
        assert [p.name for p in await service.list_pipelines(uow)] == ["Default", "Partners"]

    async def test_a_second_pipeline_of_the_same_name_is_a_conflict(
        self, uow: FakeSalesUnitOfWork
    ) -> None:
        with pytest.raises(Conflict):
            await service.create_pipeline(uow, PipelineCreate(name="Default", stages=self.STAGES))

    async def test_an_unknown_pipeline_is_not_found(self, uow: FakeSalesUnitOfWork) -> None:
        with pytest.raises(NotFound):
            await service.pipeline_view(uow, "nope")


class TestErasure:
    async def test_deals_stay_without_the_person(self, uow: FakeSalesUnitOfWork) -> None:
        deal = await a_deal(uow, customer_id=a_customer(uow))

        await service.forget_contact(uow, ["ada"])

        assert stored(uow, deal).customer_id is None
        assert (await service.opportunity_view(uow, stored(uow, deal))).contacts == []
