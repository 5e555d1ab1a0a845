"""Dependencies the routes ask for."""

from typing import Annotated

from fastapi import Depends, Request

from rapport_campaign.settings import Settings
from rapport_campaign.tracking.tokens import Tokens
from rapport_campaign.unit_of_work import CampaignUnitOfWork, SqlCampaignUnitOfWork
from rapport_campaign.worker import Worker
from rapport_events.deps import SessionDep as SessionDep
from rapport_events.deps import WriteSessionDep as WriteSessionDep
from rapport_events.deps import require_token as require_token


def get_settings(request: Request) -> Settings:
    return request.app.state.settings  # type: ignore[no-any-return]


def get_tokens(request: Request) -> Tokens:
    return request.app.state.tokens  # type: ignore[no-any-return]


def get_worker(request: Request) -> Worker:
    return request.app.state.worker  # type: ignore[no-any-return]


SettingsDep = Annotated[Settings, Depends(get_settings)]


def get_unit_of_work(session: SessionDep, settings: SettingsDep) -> CampaignUnitOfWork:
    """The use cases' stores and outbox on the request's transaction."""
    return SqlCampaignUnitOfWork(session, settings.kafka.topic)


def get_write_unit_of_work(session: WriteSessionDep, settings: SettingsDep) -> CampaignUnitOfWork:
    """The same on a write transaction, for the GET routes that record something."""
    return SqlCampaignUnitOfWork(session, settings.kafka.topic)


# scope="function", as the session it is built on: it is used up when the route returns.
UnitOfWorkDep = Annotated[CampaignUnitOfWork, Depends(get_unit_of_work, scope="function")]
WriteUnitOfWorkDep = Annotated[
    CampaignUnitOfWork, Depends(get_write_unit_of_work, scope="function")
]
TokensDep = Annotated[Tokens, Depends(get_tokens)]
WorkerDep = Annotated[Worker, Depends(get_worker)]
