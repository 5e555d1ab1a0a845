"""Every query of the slices domain: the shared slices and the match keys of consented
contacts.

The partner API's reads, the filler, the merge, the erasure and the export ask theirs of a
`SliceStore` (`SqlSliceStore` here, a fake in `rapport_partner_share.testing`); the end of
a partnership deletes through `SqlSliceStore` too (`unit_of_work.SqlPartnerShares`).
"""

from collections.abc import Iterable, Sequence
from typing import Protocol

from sqlalchemy import delete
from sqlmodel import col, select

from rapport_events.unit_of_work import SqlStore
from rapport_partner_share.shared import owner
from rapport_partner_share.slices.models import MatchKey, SharedSlice


class SliceStore(Protocol):
    def add(self, row: SharedSlice) -> None: ...

    async def get_slice(
        self, customer_id: str, partner_id: str, slice_name: str
    ) -> SharedSlice | None: ...

    async def slices_of(self, customer_id: str, partner_id: str | None = None) -> list[SharedSlice]:
        """The customer's slices (shared with one partner, when named), by partner and slice."""
        ...

    async def slices_of_many(
        self, partner_id: str, customer_ids: Iterable[str], slice_name: str | None = None
    ) -> list[SharedSlice]:
        """The slices these customers share with the partner (only `slice_name`, when named)."""
        ...

    async def replace_match_keys(
        self, customer_id: str, partner_id: str, keys: Iterable[tuple[str, str]]
    ) -> None:
        """The pair's match keys become `keys` (kind, digest)."""
        ...

    async def find_matches(
        self, partner_id: str, kind: str, digests: Sequence[str]
    ) -> list[MatchKey]:
        """The partner's match keys of that kind among these digests."""
        ...

    # What the merge, the erasure and the export ask.

    async def match_keys_of(self, customer_id: str) -> list[MatchKey]:
        """The customer's match keys, by partner and kind."""
        ...

    async def forget_shares(self, customer_id: str, partner_id: str | None = None) -> None:
        """Delete the customer's shared slices and match keys (with one partner, when named)."""
        ...


class SqlSliceStore(SqlStore):
    async def get_slice(
        self, customer_id: str, partner_id: str, slice_name: str
    ) -> SharedSlice | None:
        return await self.session.get(SharedSlice, (customer_id, partner_id, slice_name))

    async def slices_of(self, customer_id: str, partner_id: str | None = None) -> list[SharedSlice]:
        query = select(SharedSlice).where(col(SharedSlice.customer_id) == customer_id)
        if partner_id is not None:
            query = query.where(col(SharedSlice.partner_id) == partner_id)
        query = query.order_by(col(SharedSlice.partner_id), col(SharedSlice.slice))
        return list((await self.session.exec(query)).all())

    async def slices_of_many(
        self, partner_id: str, customer_ids: Iterable[str], slice_name: str | None = None
    ) -> list[SharedSlice]:
        query = select(SharedSlice).where(
            col(SharedSlice.partner_id) == partner_id,
            col(SharedSlice.customer_id).in_(list(customer_ids)),
        )
        if slice_name is not None:
            query = query.where(col(SharedSlice.slice) == slice_name)
        return list((await self.session.exec(query)).all())

    async def replace_match_keys(
        self, customer_id: str, partner_id: str, keys: Iterable[tuple[str, str]]
    ) -> None:
        await self.delete_match_keys(customer_id=customer_id, partner_id=partner_id)
        for kind, digest in set(keys):
            self.session.add(
                MatchKey(partner_id=partner_id, kind=kind, digest=digest, customer_id=customer_id)
            )

    async def find_matches(
        self, partner_id: str, kind: str, digests: Sequence[str]
    ) -> list[MatchKey]:
        if not digests:
            return []
        result = await self.session.exec(
            select(MatchKey).where(
                col(MatchKey.partner_id) == partner_id,
                col(MatchKey.kind) == kind,
                col(MatchKey.digest).in_(list(digests)),
            )
        )
        return list(result.all())

    async def match_keys_of(self, customer_id: str) -> list[MatchKey]:
        result = await self.session.exec(
            select(MatchKey)
            .where(col(MatchKey.customer_id) == customer_id)
            .order_by(col(MatchKey.partner_id), col(MatchKey.kind))
        )
        return list(result.all())

    async def forget_shares(self, customer_id: str, partner_id: str | None = None) -> None:
        await self.delete_slices(customer_id=customer_id, partner_id=partner_id)
        await self.delete_match_keys(customer_id=customer_id, partner_id=partner_id)

    # The set-based deletions, of a customer's (`forget_shares`) or a partner's rows.

    async def delete_slices(
        self, *, customer_id: str | None = None, partner_id: str | None = None
    ) -> None:
        await self.session.exec(
            delete(SharedSlice).where(*owner(SharedSlice, customer_id, partner_id))
        )

    async def delete_match_keys(
        self, *, customer_id: str | None = None, partner_id: str | None = None
    ) -> None:
        await self.session.exec(delete(MatchKey).where(*owner(MatchKey, customer_id, partner_id)))
