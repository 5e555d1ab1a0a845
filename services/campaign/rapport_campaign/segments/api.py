"""The segments routes: rules, previews and members."""

from typing import Annotated

from fastapi import APIRouter, Body, Depends, Query, Response, status

from rapport_campaign.deps import UnitOfWorkDep, require_token
from rapport_campaign.errors import CONFLICT, INVALID, NOT_FOUND
from rapport_campaign.segments import service
from rapport_campaign.segments.models import (
    MemberPage,
    MemberPublic,
    PreviewPublic,
    Segment,
    SegmentCreate,
    SegmentPreview,
    SegmentPublic,
    SegmentUpdate,
)
from rapport_events.limits import PathId

router = APIRouter(dependencies=[Depends(require_token)])

RULE_EXAMPLES = {
    "shoe buyers in France": {
        "value": {
            "name": "French shoe buyers",
            "rule": {
                "all": [
                    {"attribute": "country", "op": "eq", "value": "FR"},
                    {
                        "event": "order.completed",
                        "at_least": 2,
                        "within_days": 90,
                        "where": [{"property": "category", "op": "eq", "value": "shoes"}],
                    },
                ]
            },
        }
    },
    "gold customers gone quiet": {
        "value": {
            "name": "Gold, quiet for 60 days",
            "rule": {
                "all": [
                    {"metric": "tier", "op": "gte", "value": "gold"},
                    {"metric": "recency_days", "op": "gt", "value": 60},
                    {"consent": "email"},
                ]
            },
        }
    },
    "a micro-market of two": {
        "value": {
            "name": "Two VIPs",
            "rule": {
                "attribute": "email",
                "op": "in",
                "value": ["ada@example.com", "alan@example.com"],
            },
        }
    },
}


def _segment(segment: Segment, count: int) -> SegmentPublic:
    return SegmentPublic.model_validate(segment).model_copy(update={"member_count": count})


@router.post(
    "/segments",
    tags=["segments"],
    status_code=status.HTTP_201_CREATED,
    response_model=SegmentPublic,
    responses=INVALID,
)
async def create_segment(
    body: Annotated[SegmentCreate, Body(openapi_examples=RULE_EXAMPLES)],
    uow: UnitOfWorkDep,
) -> SegmentPublic:
    """Create a segment; members are computed now and kept current as events arrive."""
    segment, count = await service.create_segment(uow, body)
    return _segment(segment, count)


@router.post(
    "/segments/preview", tags=["segments"], response_model=PreviewPublic, responses=INVALID
)
async def preview_segment(body: SegmentPreview, uow: UnitOfWorkDep) -> PreviewPublic:
    """Count who a rule matches now, without saving anything."""
    count, sample, timed = await service.preview_segment(uow, body.rule)
    return PreviewPublic(count=count, sample=sample, time_dependent=timed)


@router.get("/segments", tags=["segments"], response_model=list[SegmentPublic])
async def list_segments(uow: UnitOfWorkDep) -> list[SegmentPublic]:
    """Every segment with its member count."""
    return [_segment(s, n) for s, n in await service.list_segments(uow)]


@router.get(
    "/segments/{segment_id}", tags=["segments"], response_model=SegmentPublic, responses=NOT_FOUND
)
async def read_segment(segment_id: PathId, uow: UnitOfWorkDep) -> SegmentPublic:
    """One segment with its member count."""
    return _segment(*await service.get_segment(uow, segment_id))


@router.patch(
    "/segments/{segment_id}", tags=["segments"], response_model=SegmentPublic, responses=NOT_FOUND
)
async def update_segment(
    segment_id: PathId, body: SegmentUpdate, uow: UnitOfWorkDep
) -> SegmentPublic:
    """Rename a segment or change its description (a rule never changes)."""
    return _segment(*await service.update_segment(uow, segment_id, body))


@router.delete(
    "/segments/{segment_id}",
    tags=["segments"],
    status_code=status.HTTP_204_NO_CONTENT,
    responses={**NOT_FOUND, **CONFLICT},
)
async def delete_segment(segment_id: PathId, uow: UnitOfWorkDep) -> Response:
    """Delete a segment nothing else uses; its members exit."""
    await service.delete_segment(uow, segment_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    "/segments/{segment_id}/members",
    tags=["segments"],
    response_model=MemberPage,
    responses=NOT_FOUND,
)
async def segment_members(
    segment_id: PathId,
    uow: UnitOfWorkDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Query(max_length=64)] = None,
) -> MemberPage:
    """The segment's members in pages, with the total count."""
    count, rows, next_cursor = await service.member_page(
        uow, segment_id, cursor=cursor, limit=limit
    )
    return MemberPage(
        segment_id=segment_id,
        count=count,
        members=[MemberPublic(customer_id=r.customer_id, entered_at=r.entered_at) for r in rows],
        next_cursor=next_cursor,
    )
