"""Segments: the builder turns its rows into campaign's rule language, counts members
live while the rule is edited, and saves; members are listed."""

import json

import pytest

from rapport_campaign.segments.models import SegmentCreate, SegmentPreview
from rapport_console.segments.rules import Row, RuleError, rule_from
from rapport_console.testing import CUSTOMER_ID, SEGMENT_ID, FakeServices

from .conftest import Login, form_token

# The console in process on a SQLite file of its own: not a unit test.
pytestmark = pytest.mark.integration


class TestRuleFromRows:
    def test_rows_combine_into_one_rule_campaign_accepts(self) -> None:
        rule = rule_from(
            [
                Row("country", "in", "GB, FR"),
                Row("tier", "gte", "Gold"),
                Row("age", "between", "25, 34"),
                Row("consent", "granted", "email"),
                Row("", "eq", ""),
            ],
            "all",
        )

        assert rule == {
            "all": [
                {"attribute": "country", "op": "in", "value": ["GB", "FR"]},
                {"metric": "tier", "op": "gte", "value": "gold"},
                {"attribute": "age", "op": "between", "value": [25, 34]},
                {"consent": "email"},
            ]
        }
        SegmentPreview.model_validate({"rule": rule})

    def test_a_micro_segment_of_two_customers(self) -> None:
        rule = rule_from([Row("email", "in", "ada@example.com, grace@example.com")], "any")

        assert rule == {
            "attribute": "email",
            "op": "in",
            "value": ["ada@example.com", "grace@example.com"],
        }
        SegmentPreview.model_validate({"rule": rule})

    @pytest.mark.parametrize(
        ("row", "message"),
        [
            (Row("orders", "gt", "many"), "not a number"),
            (Row("orders", "contains", "1"), "cannot use"),
            (Row("age", "between", "25"), "two values"),
            (Row("tier", "eq", "diamond"), "tier is one of"),
            (Row("shoe_size", "eq", "9"), "no field"),
            (Row("country", "eq", ""), "a value is needed"),
        ],
    )
    def test_a_bad_row_is_named(self, row: Row, message: str) -> None:
        with pytest.raises(RuleError, match=message):
            rule_from([Row("", "", ""), row], "all")

    def test_no_row_is_no_rule(self) -> None:
        with pytest.raises(RuleError, match="at least one"):
            rule_from([Row("", "eq", "")], "all")


class TestBuilderPage:
    async def test_the_count_follows_the_rule_being_edited(
        self, login: Login, fakes: FakeServices
    ) -> None:
        marketer = await login("marketer")
        token = form_token((await marketer.get("/segments/new")).text)
        form = {"csrf_token": token, "combine": "all", "field_0": "country", "op_0": "eq"}

        in_gb = await marketer.post("/segments/preview", data={**form, "value_0": "GB"})
        in_fr = await marketer.post("/segments/preview", data={**form, "value_0": "FR"})
        broken = await marketer.post(
            "/segments/preview", data={**form, "op_0": "gt", "value_0": "x"}
        )

        assert 'data-testid="count-value">42<' in in_gb.text
        assert 'data-testid="count-value">7<' in in_fr.text
        assert "cannot use" in broken.text
        sent = [json.loads(r.content) for r in fakes.requests if r.method == "POST"]
        assert len(sent) == 2  # the broken rule never reached campaign
        for body in sent:
            SegmentPreview.model_validate(body)

    async def test_saving_creates_the_segment_and_opens_it(
        self, login: Login, fakes: FakeServices
    ) -> None:
        marketer = await login("marketer")
        token = form_token((await marketer.get("/segments/new")).text)

        reply = await marketer.post(
            "/segments",
            data={
                "csrf_token": token,
                "name": "Gold in GB",
                "combine": "all",
                "field_0": "country",
                "op_0": "eq",
                "value_0": "GB",
                "field_1": "tier",
                "op_1": "gte",
                "value_1": "gold",
            },
        )

        assert reply.status_code == 303 and reply.headers["location"] == "/segments/seg-new"
        (created,) = [
            json.loads(r.content)
            for r in fakes.requests
            if r.url.path == "/segments" and r.method == "POST"
        ]
        SegmentCreate.model_validate(created)

    async def test_a_segment_lists_its_members(self, login: Login) -> None:
        marketer = await login("marketer")

        page = await marketer.get(f"/segments/{SEGMENT_ID}")

        assert page.status_code == 200
        assert "Big spenders" in page.text and f'href="/customers/{CUSTOMER_ID}"' in page.text

    async def test_support_cannot_preview_or_save(self, login: Login, fakes: FakeServices) -> None:
        agent = await login("support")
        token = form_token((await agent.get("/customers")).text)
        form = {
            "csrf_token": token,
            "name": "x",
            "field_0": "country",
            "op_0": "eq",
            "value_0": "GB",
        }

        assert (await agent.post("/segments/preview", data=form)).status_code == 403
        assert (await agent.post("/segments", data=form)).status_code == 403
        assert [r for r in fakes.requests if r.method == "POST"] == []

    async def test_a_form_without_its_token_is_refused(
        self, login: Login, fakes: FakeServices
    ) -> None:
        marketer = await login("marketer")

        reply = await marketer.post(
            "/segments", data={"name": "x", "field_0": "country", "op_0": "eq", "value_0": "GB"}
        )

        assert reply.status_code == 403
        assert [r for r in fakes.requests if r.method == "POST"] == []
