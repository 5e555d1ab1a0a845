"""The segment rule language: what it accepts, what it refuses and why, what it depends on."""

from typing import Any

import pytest
from pydantic import ValidationError

from rapport_campaign.segments import rules


def error_of(data: Any) -> str:
    with pytest.raises(ValidationError) as raised:
        rules.parse(data)
    return str(raised.value)


class TestParsing:
    def test_a_nested_rule_round_trips_through_json(self) -> None:
        data = {
            "all": [
                {"attribute": "country", "op": "in", "value": ["FR", "BE"]},
                {
                    "not": {
                        "event": "order.completed",
                        "at_least": 2,
                        "within_days": 30.0,
                        "where": [{"property": "category", "op": "eq", "value": "shoes"}],
                    }
                },
                {"any": [{"metric": "tier", "op": "gte", "value": "gold"}, {"consent": "sms"}]},
                {"segment": "seg_1"},
            ]
        }
        assert rules.dump(rules.parse(data)) == data

    def test_a_behaviour_without_counts_means_at_least_one(self) -> None:
        rule = rules.parse({"event": "cart.updated"})
        assert isinstance(rule, rules.BehaviourCondition)
        assert (rule.at_least, rule.at_most) == (1, None)

    def test_exists_takes_no_value(self) -> None:
        rule = rules.parse({"attribute": "phone", "op": "exists"})
        assert rules.dump(rule) == {"attribute": "phone", "op": "exists"}


class TestRefusals:
    @pytest.mark.parametrize(
        ("rule", "message"),
        [
            ({"metric": "recency_days", "op": "gt", "value": 36_501}, "at most 36500 days"),
            ({"attribute": "age", "op": "lt", "value": 151}, "at most 150 years"),
            ({"metric": "revenue", "op": "gt", "value": float("inf")}, "a number between"),
            ({"metric": "nps", "op": "eq", "value": float("nan")}, "a number between"),
            ({"metric": "revenue", "op": "lt", "value": 10**12}, "a number between"),
        ],
    )
    def test_values_out_of_range_are_refused(self, rule: dict[str, Any], message: str) -> None:
        assert message in error_of(rule)

    def test_an_object_without_a_known_key_says_which_keys_exist(self) -> None:
        assert "exactly one of the keys all, any, not" in error_of({"colour": "red"})

    def test_two_keys_in_one_object_are_refused(self) -> None:
        assert "exactly one of the keys" in error_of({"all": [], "any": []})

    def test_an_empty_all_is_refused(self) -> None:
        assert "at least 1 item" in error_of({"all": []})

    def test_an_unknown_attribute_lists_the_known_ones(self) -> None:
        message = error_of({"attribute": "colour", "op": "eq", "value": "red"})
        assert "'country'" in message and "'age'" in message

    def test_an_op_the_field_cannot_do_is_named(self) -> None:
        message = error_of({"attribute": "age", "op": "contains", "value": "3"})
        assert "age does not support op 'contains'" in message

    def test_text_where_a_number_belongs_is_refused(self) -> None:
        assert "orders compares with a number" in error_of(
            {"metric": "orders", "op": "gte", "value": "many"}
        )

    def test_a_missing_value_is_refused(self) -> None:
        assert "op 'eq' needs a value" in error_of({"attribute": "city", "op": "eq"})

    def test_between_needs_an_ordered_pair(self) -> None:
        assert "low <= high" in error_of({"attribute": "age", "op": "between", "value": [40, 20]})

    def test_an_unknown_tier_is_refused(self) -> None:
        assert "one of none, bronze, silver, gold, platinum" in error_of(
            {"metric": "tier", "op": "eq", "value": "diamond"}
        )

    def test_a_score_outside_one_to_five_is_refused(self) -> None:
        assert "score from 1 to 5" in error_of({"metric": "recency_score", "op": "gte", "value": 6})

    def test_an_unknown_event_property_lists_the_known_ones(self) -> None:
        message = error_of(
            {"event": "order.completed", "where": [{"property": "colour", "value": "red"}]}
        )
        assert "order.completed has no property 'colour'" in message
        assert "category" in message

    def test_at_least_above_at_most_is_refused(self) -> None:
        assert "at_least cannot be more than at_most" in error_of(
            {"event": "order.completed", "at_least": 3, "at_most": 1}
        )

    def test_an_error_deep_inside_points_at_its_place(self) -> None:
        with pytest.raises(ValidationError) as raised:
            rules.parse({"all": [{"any": [{"attribute": "city", "op": "eq"}]}]})
        [problem] = raised.value.errors()
        assert problem["loc"][:4] == ("all", "all", 0, "any")


class TestTraitRules:
    def test_a_number_or_a_numeric_op_compares_numbers_else_text(self) -> None:
        assert rules.parse({"trait": "seats", "op": "gt", "value": 3}).kind == "number"  # type: ignore[union-attr]
        assert rules.parse({"trait": "seats", "op": "in", "value": [1, 2]}).kind == "number"  # type: ignore[union-attr]
        assert rules.parse({"trait": "plan", "op": "eq", "value": "pro"}).kind == "text"  # type: ignore[union-attr]

    def test_a_name_outside_plain_letters_digits_dash_underscore_is_refused(self) -> None:
        with pytest.raises(ValidationError, match="pattern"):
            rules.parse({"trait": "a'b", "op": "eq", "value": "x"})

    def test_ops_the_kind_cannot_do_are_refused(self) -> None:
        with pytest.raises(ValidationError, match="does not support op 'contains'"):
            rules.parse({"trait": "seats", "op": "contains", "value": 3})
        with pytest.raises(ValidationError, match="compares with a number"):
            rules.parse({"trait": "seats", "op": "gt", "value": "many"})

    def test_traits_depend_on_profile_events(self) -> None:
        rule = rules.parse({"trait": "plan", "op": "exists"})
        assert rules.analyse(rule, {}).relevance == frozenset({"profile"})


class TestAnalysis:
    def analyse(self, data: Any, **known: rules.Analysis) -> rules.Analysis:
        return rules.analyse(rules.parse(data), known)

    def test_attributes_depend_on_profile_events(self) -> None:
        result = self.analyse({"attribute": "city", "op": "eq", "value": "Lyon"})
        assert result.relevance == {"profile"}
        assert result.time_dependent is False

    def test_age_reads_the_clock(self) -> None:
        assert self.analyse({"attribute": "age", "op": "gte", "value": 18}).time_dependent

    def test_a_window_reads_the_clock_and_depends_on_its_event(self) -> None:
        result = self.analyse({"event": "cart.updated", "within_days": 1})
        assert result.relevance == {"cart"}
        assert result.time_dependent

    def test_metrics_depend_on_orders_points_or_surveys(self) -> None:
        assert self.analyse({"metric": "tier", "op": "eq", "value": "gold"}).relevance == {"order"}
        points = {"metric": "loyalty_points", "op": "gt", "value": 1}
        assert self.analyse(points).relevance == {"loyalty"}
        assert self.analyse({"metric": "nps", "op": "gte", "value": 9}).relevance == {"survey"}

    def test_recency_reads_the_clock(self) -> None:
        assert self.analyse({"metric": "recency_days", "op": "gt", "value": 30}).time_dependent

    def test_a_segment_reference_inherits_the_other_segments_needs(self) -> None:
        other = rules.Analysis(relevance=frozenset({"cart"}), time_dependent=True)
        result = self.analyse({"all": [{"segment": "seg_x"}, {"consent": "email"}]}, seg_x=other)
        assert result.relevance == {"cart", "consent"}
        assert result.time_dependent

    def test_references_are_found_at_any_depth(self) -> None:
        rule = rules.parse({"not": {"any": [{"segment": "a"}, {"all": [{"segment": "b"}]}]}})
        assert rules.references(rule) == {"a", "b"}
