"""Pipelines with ordered stages, and opportunities moving through them.

Every stage change is an event on the log (opportunity.created, .stage.changed, .won,
.lost); a won opportunity can record an order.completed for its primary contact, which
is how the deal reaches profile's metrics and campaign's attribution.
"""

from decimal import Decimal

from rapport_events.base import Event, utcnow
from rapport_events.types import (
    LineItem,
    OpportunityCreated,
    OpportunityLost,
    OpportunityStageChanged,
    OpportunityWon,
    OrderCompleted,
)
from rapport_sales.accounts.models import SalesContact
from rapport_sales.accounts.service import get_account
from rapport_sales.customers.models import SalesCustomer
from rapport_sales.errors import Conflict, InvalidRequest, NotFound
from rapport_sales.opportunities.models import (
    OpportunityCreate,
    OpportunityLose,
    OpportunityPublic,
    OpportunityUpdate,
    OpportunityWin,
    PipelineCreate,
    PipelinePublic,
    SalesOpportunity,
    SalesOpportunityContact,
    SalesPipeline,
    SalesStage,
    SalesStageChange,
    StageChangePublic,
    StagePublic,
    Status,
)
from rapport_sales.opportunities.store import OpportunityFilter
from rapport_sales.shared import Page, account_subject, aware
from rapport_sales.unit_of_work import SalesUnitOfWork

DEFAULT_PIPELINE = "default"
ORDER_PREFIX = "sales-"


# --- pipelines -------------------------------------------------------------------------------


async def create_pipeline(uow: SalesUnitOfWork, body: PipelineCreate) -> PipelinePublic:
    """A new pipeline and its stages, in the order given."""
    if await uow.opportunities.pipeline_named(body.name) is not None:
        raise Conflict(f"a pipeline is already named {body.name!r}")
    pipeline = SalesPipeline(name=body.name, created_at=utcnow())
    uow.opportunities.add(pipeline)
    for position, stage in enumerate(body.stages):
        uow.opportunities.add(
            SalesStage(pipeline_id=pipeline.id, position=position, **stage.model_dump())
        )
    await uow.flush()
    return await pipeline_view(uow, pipeline.id)


async def stages_of(uow: SalesUnitOfWork, pipeline_id: str) -> list[SalesStage]:
    """The pipeline's stages in order, or NotFound."""
    stages = await uow.opportunities.stages_of_pipeline(pipeline_id)
    if not stages:
        raise NotFound(f"no pipeline {pipeline_id}")
    return stages


async def pipeline_view(uow: SalesUnitOfWork, pipeline_id: str) -> PipelinePublic:
    """The pipeline with its ordered stages."""
    pipeline = await uow.opportunities.get_pipeline(pipeline_id)
    if pipeline is None:
        raise NotFound(f"no pipeline {pipeline_id}")
    stages = await stages_of(uow, pipeline_id)
    return PipelinePublic(
        id=pipeline.id,
        name=pipeline.name,
        stages=[StagePublic.model_validate(stage) for stage in stages],
    )


async def list_pipelines(uow: SalesUnitOfWork) -> list[PipelinePublic]:
    """Every pipeline with its stages (there are few)."""
    pipelines = await uow.opportunities.all_pipelines()
    return [await pipeline_view(uow, pipeline.id) for pipeline in pipelines]


def _stage(stages: list[SalesStage], key: str) -> SalesStage:
    for stage in stages:
        if stage.key == key:
            return stage
    known = ", ".join(stage.key for stage in stages)
    raise InvalidRequest(f"unknown stage {key!r} (this pipeline's stages: {known})")


# --- opportunities ---------------------------------------------------------------------------


async def create_opportunity(
    uow: SalesUnitOfWork, body: OpportunityCreate, default_currency: str
) -> OpportunityPublic:
    """Open an opportunity in a stage of its pipeline; publishes opportunity.created."""
    now = utcnow()
    account = await get_account(uow, body.account_id)
    pipeline_id = body.pipeline_id or DEFAULT_PIPELINE
    stages = await stages_of(uow, pipeline_id)
    stage = _stage(stages, body.stage) if body.stage else stages[0]
    if stage.outcome != "open":
        raise InvalidRequest(f"an opportunity opens in an open stage, not {stage.key!r}")
    if body.expected_close_date is not None and body.expected_close_date < now.date():
        raise InvalidRequest("expected_close_date is before the opportunity's creation")
    contacts = list(
        dict.fromkeys([*([body.customer_id] if body.customer_id else []), *body.contacts])
    )
    people = await _known_customers(uow, contacts)
    primary = people.get(body.customer_id) if body.customer_id else None
    opportunity = SalesOpportunity(
        pipeline_id=pipeline_id,
        account_id=account.id,
        customer_id=body.customer_id,
        name=body.name,
        owner=body.owner or account.owner,
        amount=body.amount,
        currency=body.currency or default_currency,
        expected_close_date=body.expected_close_date,
        stage=stage.key,
        probability=stage.probability,
        source=body.source or _attributed_source(primary),
        products=[line.model_dump(mode="json") for line in body.products],
        created_at=now,
        updated_at=now,
    )
    uow.opportunities.add(opportunity)
    for customer_id in contacts:
        uow.opportunities.add(
            SalesOpportunityContact(opportunity_id=opportunity.id, customer_id=customer_id)
        )
    await _make_contacts(uow, account.id, contacts)
    uow.opportunities.add(
        SalesStageChange(opportunity_id=opportunity.id, to_stage=stage.key, changed_at=now)
    )
    await uow.outbox.publish([_created(opportunity)])
    return await opportunity_view(uow, opportunity)


async def _known_customers(uow: SalesUnitOfWork, ids: list[str]) -> dict[str, SalesCustomer]:
    found = await uow.customers.customers_among(ids)
    missing = [customer_id for customer_id in ids if customer_id not in found]
    if missing:
        raise InvalidRequest(f"unknown customer {missing[0]} (not registered in profile)")
    return found


async def _make_contacts(uow: SalesUnitOfWork, account_id: str, ids: list[str]) -> None:
    """The opportunity's people become contacts of its account if they were not."""
    if not ids:
        return
    linked = await uow.accounts.contact_ids_among(account_id, ids)
    for customer_id in ids:
        if customer_id not in linked:
            uow.accounts.add(
                SalesContact(
                    account_id=account_id,
                    customer_id=customer_id,
                    source="manual",
                    role="opportunity",
                    linked_at=utcnow(),
                )
            )


def _attributed_source(person: SalesCustomer | None) -> str | None:
    """profile's attribution: the campaign last clicked, else the acquisition channel."""
    if person is None:
        return None
    if person.last_campaign_id:
        return f"campaign:{person.last_campaign_id}"
    if person.acquisition_channel:
        return f"channel:{person.acquisition_channel}"
    return None


def _subject(opportunity: SalesOpportunity) -> str:
    return opportunity.customer_id or account_subject(opportunity.account_id)


def _common(opportunity: SalesOpportunity) -> dict[str, object]:
    return {
        "customer_id": _subject(opportunity),
        "opportunity_id": opportunity.id,
        "account_id": opportunity.account_id,
        "pipeline_id": opportunity.pipeline_id,
        "amount": opportunity.amount,
        "currency": opportunity.currency,
        "owner": opportunity.owner,
    }


def _created(opportunity: SalesOpportunity) -> OpportunityCreated:
    return OpportunityCreated(
        **_common(opportunity),  # type: ignore[arg-type]
        name=opportunity.name,
        stage=opportunity.stage,
        probability=opportunity.probability,
        expected_close_date=opportunity.expected_close_date,
        source=opportunity.source,
    )


async def get_opportunity(uow: SalesUnitOfWork, opportunity_id: str) -> SalesOpportunity:
    """The opportunity, or NotFound."""
    opportunity = await uow.opportunities.get_opportunity(opportunity_id)
    if opportunity is None:
        raise NotFound(f"no opportunity {opportunity_id}")
    return opportunity


def _still_open(opportunity: SalesOpportunity) -> None:
    if opportunity.status != "open":
        raise Conflict(f"opportunity {opportunity.id} is already {opportunity.status}")


async def update_opportunity(
    uow: SalesUnitOfWork, opportunity_id: str, body: OpportunityUpdate
) -> OpportunityPublic:
    """Change an open opportunity; a new stage is published as opportunity.stage.changed."""
    opportunity = await get_opportunity(uow, opportunity_id)
    _still_open(opportunity)
    changes = body.model_dump(exclude_unset=True, exclude={"stage"})
    if (
        changes.get("expected_close_date") is not None
        and changes["expected_close_date"] < aware(opportunity.created_at).date()
    ):
        raise InvalidRequest("expected_close_date is before the opportunity's creation")
    for name, value in changes.items():
        if value is None and name in ("name", "amount"):
            continue
        setattr(opportunity, name, value)
    events: list[Event] = []
    if body.stage is not None and body.stage != opportunity.stage:
        stage = _stage(await stages_of(uow, opportunity.pipeline_id), body.stage)
        if stage.outcome != "open":
            raise InvalidRequest(
                f"close an opportunity with /win or /lose, not stage {stage.key!r}"
            )
        events.append(_move(uow, opportunity, stage))
    opportunity.updated_at = utcnow()
    uow.opportunities.add(opportunity)
    await uow.outbox.publish(events)
    return await opportunity_view(uow, opportunity)


def _move(
    uow: SalesUnitOfWork, opportunity: SalesOpportunity, stage: SalesStage
) -> OpportunityStageChanged:
    """Put the opportunity in `stage`, with its history row; the event that says so."""
    before = opportunity.stage
    opportunity.stage, opportunity.probability = stage.key, stage.probability
    uow.opportunities.add(
        SalesStageChange(
            opportunity_id=opportunity.id,
            from_stage=before,
            to_stage=stage.key,
            changed_at=utcnow(),
        )
    )
    return OpportunityStageChanged(
        **_common(opportunity),  # type: ignore[arg-type]
        from_stage=before,
        to_stage=stage.key,
        probability=stage.probability,
    )


def _outcome_stage(stages: list[SalesStage], outcome: str) -> SalesStage:
    return next(stage for stage in stages if stage.outcome == outcome)


async def win_opportunity(
    uow: SalesUnitOfWork, opportunity_id: str, body: OpportunityWin
) -> OpportunityPublic:
    """Close as won; with `record_order`, the deal is an order of its primary contact."""
    opportunity = await get_opportunity(uow, opportunity_id)
    _still_open(opportunity)
    if body.record_order and opportunity.customer_id is None:
        raise InvalidRequest("an order needs the opportunity's primary contact (customer_id)")
    stages = await stages_of(uow, opportunity.pipeline_id)
    events: list[Event] = [_move(uow, opportunity, _outcome_stage(stages, "won"))]
    _close(opportunity, "won")
    if body.record_order:
        opportunity.order_id = f"{ORDER_PREFIX}{opportunity.id}"
        events.append(_order(opportunity))
    events.append(
        OpportunityWon(
            **_common(opportunity),  # type: ignore[arg-type]
            order_id=opportunity.order_id,
            cycle_days=cycle_days(opportunity),
        )
    )
    uow.opportunities.add(opportunity)
    await uow.outbox.publish(events)
    return await opportunity_view(uow, opportunity)


async def lose_opportunity(
    uow: SalesUnitOfWork, opportunity_id: str, body: OpportunityLose
) -> OpportunityPublic:
    """Close as lost, with the reason."""
    opportunity = await get_opportunity(uow, opportunity_id)
    _still_open(opportunity)
    stages = await stages_of(uow, opportunity.pipeline_id)
    moved = _move(uow, opportunity, _outcome_stage(stages, "lost"))
    _close(opportunity, "lost")
    opportunity.lost_reason = body.reason
    lost = OpportunityLost(
        **_common(opportunity),  # type: ignore[arg-type]
        reason=body.reason,
        cycle_days=cycle_days(opportunity),
    )
    uow.opportunities.add(opportunity)
    await uow.outbox.publish([moved, lost])
    return await opportunity_view(uow, opportunity)


def _close(opportunity: SalesOpportunity, status: Status) -> None:
    now = utcnow()
    opportunity.status, opportunity.closed_at, opportunity.updated_at = status, now, now


def cycle_days(opportunity: SalesOpportunity) -> int:
    """Whole days elapsed from opening to closing (0 for a deal closed within a day)."""
    # Elapsed time, not calendar dates: the reports average the same elapsed days, and
    # a deal opened at 23:59 and won at 00:01 took minutes, not a day.
    closed = aware(opportunity.closed_at or utcnow())
    return max(0, (closed - aware(opportunity.created_at)).days)


def _order(opportunity: SalesOpportunity) -> OrderCompleted:
    """The won deal as an order of its primary contact: its products, else one line."""
    items = [
        LineItem(
            product_id=line["product_id"],
            name=line.get("name"),
            price=Decimal(str(line["price"])),
            quantity=line.get("quantity", 1),
        )
        for line in opportunity.products
    ] or [
        LineItem(
            product_id=f"opportunity:{opportunity.id}",
            name=opportunity.name,
            price=opportunity.amount,
        )
    ]
    assert opportunity.customer_id is not None
    return OrderCompleted(
        customer_id=opportunity.customer_id,
        order_id=opportunity.order_id or f"{ORDER_PREFIX}{opportunity.id}",
        items=tuple(items),
        revenue=opportunity.amount,
        currency=opportunity.currency,
        sales_channel="sales",
    )


async def opportunity_view(
    uow: SalesUnitOfWork, opportunity: SalesOpportunity
) -> OpportunityPublic:
    """The opportunity with its contacts and stage history."""
    await uow.flush()
    view = OpportunityPublic.model_validate(opportunity)
    view.contacts = sorted(await uow.opportunities.contact_ids_of(opportunity.id))
    history = await uow.opportunities.stage_history(opportunity.id)
    view.history = [StageChangePublic.model_validate(change) for change in history]
    return view


async def list_opportunities(
    uow: SalesUnitOfWork,
    *,
    status: Status | None,
    owner: str | None,
    account_id: str | None,
    pipeline_id: str | None,
    stage: str | None,
    limit: int,
    cursor: str | None,
) -> Page[OpportunityPublic]:
    """Opportunities newest first, filtered."""
    where = OpportunityFilter(status, owner, account_id, pipeline_id, stage)
    rows, next_cursor = await uow.opportunities.list_opportunities(where, limit, cursor)
    return Page(
        items=[OpportunityPublic.model_validate(row) for row in rows], next_cursor=next_cursor
    )


async def forget_contact(uow: SalesUnitOfWork, customer_ids: list[str]) -> None:
    """Opportunities survive an erasure without the person."""
    await uow.opportunities.unlink_customers(customer_ids)
    for opportunity in await uow.opportunities.opportunities_of_customers(customer_ids):
        opportunity.customer_id = None
        uow.opportunities.add(opportunity)
