"""Which tracking calls refuse sale and sharing, and what refusing records: pure rules."""

import pytest

from rapport_profile.consents import privacy_signals
from rapport_profile.consents import rules as consent_rules
from rapport_profile.consents.rules import Choice, ConsentKey

SHARING = ("DataSharing",)
P1: ConsentKey = (consent_rules.PARTNER_SHARING, "", "p-1")
P2: ConsentKey = (consent_rules.PARTNER_SHARING, "", "p-2")
EMAIL: ConsentKey = ("marketing", "email", "")


def source(context: dict, gpc_header: bool = False) -> str | None:
    return privacy_signals.refusal_source(
        context, gpc_header=gpc_header, sharing_categories=SHARING
    )


class TestTheSecGpcHeader:
    @pytest.mark.parametrize("value", ["1", " 1 ", "1\t"])
    def test_one_turns_it_on(self, value: str) -> None:
        assert privacy_signals.header_says_gpc(value)

    @pytest.mark.parametrize("value", [None, "", "0", "true", "yes", "11", "1,1"])
    def test_anything_else_does_not(self, value: str | None) -> None:
        assert not privacy_signals.header_says_gpc(value)


class TestWhatACallRefuses:
    def test_the_header_refuses_whatever_the_context_says(self) -> None:
        granting = {"gpc": False, "consent": {"categoryPreferences": {"DataSharing": True}}}
        assert source(granting, gpc_header=True) == privacy_signals.GPC_HEADER

    def test_context_gpc_true_refuses(self) -> None:
        assert source({"gpc": True}) == privacy_signals.GPC_CONTEXT

    @pytest.mark.parametrize("value", [False, "true", 1, "1", None, {}])
    def test_context_gpc_other_than_true_refuses_nothing(self, value: object) -> None:
        assert source({"gpc": value}) is None

    def test_a_refused_sharing_category_refuses(self) -> None:
        context = {"consent": {"categoryPreferences": {"Analytics": True, "DataSharing": False}}}
        assert source(context) == privacy_signals.CONSENT_CATEGORIES

    def test_other_categories_refused_or_sharing_granted_refuse_nothing(self) -> None:
        context = {"consent": {"categoryPreferences": {"Analytics": False, "DataSharing": True}}}
        assert source(context) is None

    def test_the_sharing_categories_are_the_configured_ones(self) -> None:
        context = {"consent": {"categoryPreferences": {"C0004": False}}}
        assert source(context) is None
        assert (
            privacy_signals.refusal_source(context, gpc_header=False, sharing_categories=["C0004"])
            == privacy_signals.CONSENT_CATEGORIES
        )

    @pytest.mark.parametrize(
        "context",
        [
            {},
            {"consent": None},
            {"consent": "DataSharing=false"},
            {"consent": {"categoryPreferences": ["DataSharing"]}},
            {"consent": {"categoryPreferences": {"DataSharing": "false"}}},
            {"consent": {}},
        ],
    )
    def test_missing_or_odd_shapes_refuse_nothing(self, context: dict) -> None:
        assert source(context) is None


class TestWhatARefusalRecords:
    def test_a_record_without_choices_records_the_blanket_refusal(self) -> None:
        assert privacy_signals.refusal_changes({}) == [consent_rules.BLANKET_SHARING]

    def test_every_partner_grant_is_revoked_with_it(self) -> None:
        current = {
            P2: Choice(granted=True, slices=("contact",)),
            P1: Choice(granted=True, slices=("loyalty",)),
            EMAIL: Choice(granted=True),
        }
        assert privacy_signals.refusal_changes(current) == [consent_rules.BLANKET_SHARING, P1, P2]

    def test_refused_partners_and_other_purposes_are_left_alone(self) -> None:
        current = {P1: Choice(granted=False), EMAIL: Choice(granted=True)}
        assert privacy_signals.refusal_changes(current) == [consent_rules.BLANKET_SHARING]

    def test_nothing_while_the_blanket_refusal_stands(self) -> None:
        assert (
            privacy_signals.refusal_changes({consent_rules.BLANKET_SHARING: Choice(granted=False)})
            == []
        )

    def test_a_grant_given_after_the_refusal_stands(self) -> None:
        current = {
            consent_rules.BLANKET_SHARING: Choice(granted=False),
            P1: Choice(granted=True, slices=("contact",)),
        }
        assert privacy_signals.refusal_changes(current) == []
