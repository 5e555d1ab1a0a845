"""Who a tracking call is about: identify calls link anonymous activity to a customer and fold
in the holders of a known e-mail address or external id."""

from profile_testing import TOPIC, deliver, message, published, register

from rapport_events.db import SessionFactory, transaction
from rapport_profile.customers import service as customer_service
from rapport_profile.customers import store as customer_store
from rapport_profile.identity import service as identity_service
from rapport_profile.timeline import service as timeline_service
from rapport_profile.tracking import identify as tracking_identify
from rapport_profile.tracking import service as tracking_service
from rapport_profile.tracking.parsing import ANONYMOUS, USER
from rapport_profile.unit_of_work import SqlProfileUnitOfWork


class TestIdentityResolution:
    async def test_identify_links_anonymous_activity_to_a_new_customer(
        self, sessions: SessionFactory
    ) -> None:
        visit = message(
            type="page",
            anonymousId="a-1",
            messageId="m-1",
            name="Home",
            context={"campaign": {"source": "newsletter", "medium": "email"}},
        )
        async with transaction(sessions) as session:
            await tracking_service.ingest(SqlProfileUnitOfWork(session, TOPIC), [visit])
        anonymous = tracking_identify.pseudo_id(ANONYMOUS, "a-1")
        for envelope in await published(sessions):
            await deliver(sessions, envelope.data, envelope.id)

        who = message(
            type="identify",
            anonymousId="a-1",
            userId="u-1",
            messageId="m-2",
            traits={
                "email": "Ada@Example.com",
                "firstName": "Ada",
                "lastName": "L",
                "gender": "g" * 40,
                "address": {"city": "Bath", "country": "gb"},
            },
        )
        async with transaction(sessions) as session:
            await tracking_service.ingest(SqlProfileUnitOfWork(session, TOPIC), [who])
        events = await published(sessions)
        registered = next(e for e in events if e.type == "rapport.customer.registered.v2")
        ada = registered.data.customer_id
        merged = next(e for e in events if e.type == "rapport.customer.merged.v1")

        assert registered.data.email == "ada@example.com"  # type: ignore[attr-defined]
        assert registered.data.acquisition_channel == "email"  # type: ignore[attr-defined]
        assert registered.data.gender is None  # too long for the field: ignored, not an error
        assert (registered.data.city, registered.data.country) == ("Bath", "GB")  # type: ignore[attr-defined]
        assert (merged.data.customer_id, merged.data.merged_customer_id) == (ada, anonymous)  # type: ignore[attr-defined]
        async with sessions() as session:
            page = await timeline_service.read_page(
                SqlProfileUnitOfWork(session),
                ada,
                types=["interaction.tracked"],
                limit=5,
                cursor=None,
            )
            assert await identity_service.resolve(session, anonymous) == ada
        assert [item.data["kind"] for item in page.items] == ["page"]

    async def test_identify_with_a_known_email_folds_into_that_customer(
        self, sessions: SessionFactory
    ) -> None:
        ada = await register(sessions, "ada@example.com")
        calls = [
            message(type="track", anonymousId="a-9", event="Product Viewed", messageId="m-1"),
            message(
                type="identify",
                anonymousId="a-9",
                traits={"email": "ada@example.com"},
                messageId="m-2",
            ),
            message(type="track", anonymousId="a-9", event="Product Viewed", messageId="m-3"),
        ]
        async with transaction(sessions) as session:
            await tracking_service.ingest(SqlProfileUnitOfWork(session, TOPIC), calls)

        events = await published(sessions)
        tracked = [e for e in events if e.type == "rapport.interaction.tracked.v1"]
        merged = [e for e in events if e.type == "rapport.customer.merged.v1"]
        assert tracked[-1].data.customer_id == ada
        assert [(e.data.customer_id, e.data.reason) for e in merged] == [(ada, "email")]  # type: ignore[attr-defined]

    async def test_a_shared_external_id_merges_the_newer_customer_into_the_older(
        self, sessions: SessionFactory
    ) -> None:
        ada = await register(sessions, "ada@example.com", external_ids={"pos": "P-1"})
        grace = await register(sessions, "grace@example.com")
        call = message(
            type="identify", userId=grace, traits={"externalIds": {"pos": "P-1"}}, messageId="m-1"
        )
        async with transaction(sessions) as session:
            await tracking_service.ingest(SqlProfileUnitOfWork(session, TOPIC), [call])

        async with sessions() as session:
            merged = await customer_service.get_customer(session, grace)
        assert (merged.status, merged.merged_into) == ("merged", ada)

    async def test_identify_with_a_known_external_id_folds_into_its_holder(
        self, sessions: SessionFactory
    ) -> None:
        ada = await register(sessions, "ada@example.com", external_ids={"pos": "P-1"})
        calls = [
            message(type="track", userId="u-5", event="Product Viewed", messageId="m-1"),
            message(
                type="identify",
                userId="u-5",
                traits={"externalIds": {"pos": "P-1"}, "email": "ada.pos@example.com"},
                messageId="m-2",
            ),
        ]
        async with transaction(sessions) as session:
            await tracking_service.ingest(SqlProfileUnitOfWork(session, TOPIC), calls)

        async with sessions() as session:
            everyone = await customer_store.all_customers(session)
            owner = await identity_service.resolve(
                session, tracking_identify.pseudo_id(USER, "u-5")
            )
        merged = [e for e in await published(sessions) if e.type == "rapport.customer.merged.v1"]
        assert [c.id for c in everyone] == [ada]
        assert owner == ada
        assert [(e.data.customer_id, e.data.reason) for e in merged] == [(ada, "external_id")]  # type: ignore[attr-defined]

    async def test_a_repeated_message_id_is_applied_once(self, sessions: SessionFactory) -> None:
        call = message(type="track", anonymousId="a-1", event="Clicked", messageId="same")
        async with transaction(sessions) as session:
            first = await tracking_service.ingest(
                SqlProfileUnitOfWork(session, TOPIC), [call, call]
            )
        async with transaction(sessions) as session:
            second = await tracking_service.ingest(SqlProfileUnitOfWork(session, TOPIC), [call])
        assert (first, second) == (1, 0)
        assert len(await published(sessions)) == 1
