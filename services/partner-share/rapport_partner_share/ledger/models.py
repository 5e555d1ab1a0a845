"""The audit ledger of disclosures to partners, and what the audit routes show of it."""

from datetime import datetime

from pydantic import BaseModel
from sqlalchemy import Column, ForeignKey
from sqlmodel import Field, SQLModel

from rapport_events.columns import ROW_ID
from rapport_partner_share.notices.models import Notification
from rapport_partner_share.shared import UtcDatetime, json_column, when


class Disclosure(SQLModel, table=True):
    """One disclosure to a partner: the append-only audit ledger.

    It names the customer only through pseudonyms: the partner's ref, and `subject`, a
    keyed one-way pseudonym (`security.subject_pseudonym`) a privacy officer holding the
    id can look up after erasure. The link to the customer id sits in
    `DisclosureSubject`, which erasure removes, so the ledger itself never needs an
    update or a delete. Entries written before `subject` existed have none.
    """

    __tablename__ = "partner_share_disclosures"

    id: int | None = Field(default=None, sa_column=Column(ROW_ID, primary_key=True))
    event_id: str = Field(max_length=64, unique=True)
    partner_id: str = Field(max_length=64, index=True)
    partner_name: str = Field(max_length=200)
    partner_ref: str = Field(max_length=64)
    slices: list[str] = json_column()
    fields: list[str] = json_column()
    purpose: str = Field(max_length=64)
    consent_version: int | None = None
    request_id: str = Field(max_length=128)
    disclosed_at: datetime = when()
    subject: str | None = Field(default=None, max_length=64, index=True)


class DisclosureSubject(SQLModel, table=True):
    """Which customer a ledger entry was about; deleted at erasure, the entry stays."""

    __tablename__ = "partner_share_disclosure_subjects"

    disclosure_id: int = Field(
        sa_column=Column(ROW_ID, ForeignKey("partner_share_disclosures.id"), primary_key=True)
    )
    customer_id: str = Field(max_length=64, index=True)


class DisclosurePublic(BaseModel):
    """One entry of the audit ledger."""

    id: str
    partner_id: str
    partner_name: str
    customer_id: str | None
    partner_ref: str
    slices: list[str]
    fields: list[str]
    purpose: str
    consent_version: int | None
    request_id: str
    disclosed_at: UtcDatetime

    @classmethod
    def of(cls, disclosure: Disclosure, customer_id: str | None) -> "DisclosurePublic":
        return cls.model_validate(
            {**disclosure.model_dump(exclude={"id"}), "id": disclosure.event_id}
            | {"customer_id": customer_id}
        )


class DisclosurePage(BaseModel):
    disclosures: list[DisclosurePublic]
    next_cursor: str | None


class ErasureNoticeStatus(BaseModel):
    """The erasure notice a partner was sent about the subject, and whether it acted on it."""

    id: str
    created_at: UtcDatetime
    delivered_at: UtcDatetime | None
    acknowledged: bool
    acknowledged_at: UtcDatetime | None
    acknowledged_via: str | None

    @classmethod
    def of(cls, notification: "Notification") -> "ErasureNoticeStatus":
        return cls(
            id=notification.id,
            created_at=notification.created_at,
            delivered_at=notification.delivered_at,
            acknowledged=notification.acknowledged_at is not None,
            acknowledged_at=notification.acknowledged_at,
            acknowledged_via=notification.acknowledged_via,
        )


class SubjectDisclosure(BaseModel):
    """One ledger entry about a subject, with no personal data: who received which slices,
    when, under which consent version, and the erasure notice that partner was sent."""

    id: str
    partner_id: str
    partner_name: str
    slices: list[str]
    fields: list[str]
    purpose: str
    consent_version: int | None
    disclosed_at: UtcDatetime
    erasure_notice: ErasureNoticeStatus | None


class SubjectLedger(BaseModel):
    """What the disclosure ledger holds under one subject pseudonym (GDPR Art. 19, 5(2))."""

    subject: str
    disclosures: list[SubjectDisclosure]
    next_cursor: str | None
