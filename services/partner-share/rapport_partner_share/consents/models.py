"""Where each customer's partner_sharing consent stands, partner by partner."""

from datetime import datetime

from sqlalchemy import Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from rapport_partner_share.shared import json_column, when


class PartnerConsent(SQLModel, table=True):
    """Where a customer's partner_sharing consent for one partner stands.

    The row outlives a revocation (granted=False, no slices) so that a late,
    older grant cannot bring the sharing back: only a newer version counts.
    """

    __tablename__ = "partner_share_consents"
    __table_args__ = (
        UniqueConstraint("partner_id", "ref", name="uq_partner_share_consents_ref"),
        Index("ix_partner_share_consents_feed", "partner_id", "changed_at", "customer_id"),
    )

    customer_id: str = Field(primary_key=True, max_length=64)
    partner_id: str = Field(primary_key=True, max_length=64)
    ref: str = Field(max_length=64)
    granted: bool = False
    slices: list[str] = json_column()
    version: int = 0
    granted_at: datetime | None = when(nullable=True)
    changed_at: datetime = when()
    # Profile-backed slices are fetched after the consent commits; fill_token
    # changes whenever a fetch in flight may have become stale.
    fill_pending: bool = False
    fill_token: int = 0
    fill_attempts: int = 0
    fill_next_at: datetime | None = when(nullable=True)
