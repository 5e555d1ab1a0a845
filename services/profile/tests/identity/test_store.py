"""Who owns each id of a run now, through aliases and erasures, in one lookup."""

from profile_testing import LIVE, SUBJECTS, seed, statements
from sqlalchemy.ext.asyncio import AsyncEngine

from rapport_events.db import session_factory, transaction
from rapport_profile.gdpr.models import Erasure
from rapport_profile.identity import service as identity_service
from rapport_profile.identity.models import Identity
from rapport_profile.identity.store import SqlIdentityStore


class TestOwnersOfARun:
    async def test_each_id_resolves_through_its_alias_and_erasure_as_one_lookup(
        self, engine: AsyncEngine
    ) -> None:
        sessions = session_factory(engine)
        await seed(sessions)
        ids = [*SUBJECTS, "never-seen"]
        async with transaction(sessions) as session:
            aliases, erased = await SqlIdentityStore(session).aliases_and_erasures(
                ids, identity_service.ALIAS
            )
            with statements(engine) as seen:
                owners = await identity_service.resolve_all(session, ids)
            survivors = {i: await identity_service.survivor_of(session, i) for i in ids}

        assert aliases == {"old-1": "c-1", "old-2": "c-2", "anon-9": "c-9", "gone-3": "c-3"}
        assert erased == {"c-9", "gone-3", "c-unknown-erased"}
        assert owners == {
            **{c: c for c in LIVE},
            "old-1": "c-1",
            "old-2": "c-2",
            "anon-9": None,  # its owner was erased
            "gone-3": None,  # the id itself was erased
            "c-9": None,
            "c-unknown-erased": None,
            "never-seen": "never-seen",
        }
        # The aliases and erasures in one statement; the owners found are asked for aliases.
        assert len([s for s in seen if "profile_erasures" in s]) == 1
        assert {i: s for i, s in survivors.items() if s != i} == {
            "old-1": "c-1",
            "old-2": "c-2",
            "anon-9": "c-9",  # named although erased
            "gone-3": "c-3",
        }

    async def test_more_ids_than_one_in_list_are_asked_in_chunks(self, engine: AsyncEngine) -> None:
        sessions = session_factory(engine)
        async with transaction(sessions) as session:
            for n in range(0, 1200, 3):
                session.add(
                    Identity(kind=identity_service.ALIAS, value=f"a-{n}", customer_id=f"c-{n}")
                )
            for n in range(0, 1200, 5):
                session.add(Erasure(customer_id=f"c-{n}"))
        ids = [f"a-{n}" for n in range(1200)]

        async with transaction(sessions) as session:
            with statements(engine) as seen:
                owners = await identity_service.resolve_all(session, ids)

        assert len([s for s in seen if "profile_erasures" in s]) == 3
        for n in range(1200):
            aliased = n % 3 == 0
            erased = aliased and n % 5 == 0
            assert owners[f"a-{n}"] == (None if erased else f"c-{n}" if aliased else f"a-{n}")
