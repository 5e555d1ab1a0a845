"""How a merge resolves two records' consents, over random consent sets on both records.

The rule is pure (`rapport_profile.consents`), so these properties run without a database:
150 examples a property, in seconds.
"""

from hypothesis import given, settings
from hypothesis import strategies as st

from rapport_profile.consents import rules as consent_rules
from rapport_profile.consents.rules import Choice, ConsentKey

SLICES = ("contact", "demographics", "purchase_summary", "segments", "loyalty")
KEYS: tuple[ConsentKey, ...] = (
    ("marketing", "email", ""),
    ("marketing", "sms", ""),
    ("marketing", "push", ""),
    ("analytics", "", ""),
    (consent_rules.PARTNER_SHARING, "", "p-1"),
    (consent_rules.PARTNER_SHARING, "", "p-2"),
)


@st.composite
def choice_for(draw: st.DrawFn, key: ConsentKey) -> Choice:
    if not draw(st.booleans()):
        return Choice(granted=False)
    if key[0] != consent_rules.PARTNER_SHARING:
        return Choice(granted=True)
    slices = draw(st.sets(st.sampled_from(SLICES), min_size=1))
    return Choice(granted=True, slices=tuple(sorted(slices)))


@st.composite
def records(draw: st.DrawFn) -> dict[ConsentKey, Choice]:
    """A record's explicit choices: any subset of the keys, each granted or refused."""
    keys = draw(st.sets(st.sampled_from(KEYS)))
    return {key: draw(choice_for(key)) for key in sorted(keys)}


def merged(survivor: dict[ConsentKey, Choice], other: dict[ConsentKey, Choice]) -> dict:
    return {**survivor, **consent_rules.merge_changes(survivor, other)}


def allows(choice: Choice | None) -> set[str] | None:
    """What a choice lets through: None for no choice, else the granted slices ('*' for a
    grant without slices)."""
    if choice is None:
        return None
    if not choice.granted:
        return set()
    return set(choice.slices) or {"*"}


EXAMPLES = settings(max_examples=150, deadline=None, database=None)


class TestMergingKeepsTheMostRestrictiveExplicitChoice:
    @EXAMPLES
    @given(records(), records())
    def test_where_both_chose_the_survivor_allows_only_what_both_allowed(
        self, survivor: dict[ConsentKey, Choice], other: dict[ConsentKey, Choice]
    ) -> None:
        result = merged(survivor, other)
        for key in set(survivor) & set(other):
            mine, theirs = allows(survivor[key]), allows(other[key])
            assert mine is not None and theirs is not None
            assert allows(result[key]) == mine & theirs

    @EXAMPLES
    @given(records(), records())
    def test_a_record_without_a_choice_never_overrides_one(
        self, survivor: dict[ConsentKey, Choice], other: dict[ConsentKey, Choice]
    ) -> None:
        changes = consent_rules.merge_changes(survivor, other)
        result = {**survivor, **changes}
        for key in set(survivor) - set(other):
            assert key not in changes and result[key] == survivor[key]
        for key in set(other) - set(survivor):
            assert result[key] == other[key]  # the duplicate's own choice carries over
        assert set(result) == set(survivor) | set(other)

    @EXAMPLES
    @given(records(), records())
    def test_a_merge_never_widens_what_the_survivor_allowed(
        self, survivor: dict[ConsentKey, Choice], other: dict[ConsentKey, Choice]
    ) -> None:
        result = merged(survivor, other)
        for key, choice in survivor.items():
            before, after = allows(choice), allows(result[key])
            assert before is not None and after is not None and after <= before

    @EXAMPLES
    @given(records(), records())
    def test_the_order_of_the_two_records_does_not_matter(
        self, one: dict[ConsentKey, Choice], other: dict[ConsentKey, Choice]
    ) -> None:
        assert merged(one, other) == merged(other, one)

    @EXAMPLES
    @given(records(), records())
    def test_merging_again_changes_nothing(
        self, survivor: dict[ConsentKey, Choice], other: dict[ConsentKey, Choice]
    ) -> None:
        assert consent_rules.merge_changes(merged(survivor, other), other) == {}

    @EXAMPLES
    @given(records(), records())
    def test_only_real_changes_are_recorded(
        self, survivor: dict[ConsentKey, Choice], other: dict[ConsentKey, Choice]
    ) -> None:
        for key, choice in consent_rules.merge_changes(survivor, other).items():
            assert survivor.get(key) != choice

    @EXAMPLES
    @given(records())
    def test_an_anonymous_visitor_without_choices_changes_nothing(
        self, survivor: dict[ConsentKey, Choice]
    ) -> None:
        assert consent_rules.merge_changes(survivor, {}) == {}


# --- with a blanket sharing choice (Global Privacy Control) -----------------------------

BLANKET_KEYS = (*KEYS, consent_rules.BLANKET_SHARING)
PARTNERS = [key for key in KEYS if key[0] == consent_rules.PARTNER_SHARING]


@st.composite
def records_with_blanket(draw: st.DrawFn) -> dict[ConsentKey, Choice]:
    """A record's choices, which may include a blanket refusal of every partner."""
    record = draw(records())
    if draw(st.booleans()):
        record[consent_rules.BLANKET_SHARING] = Choice(granted=False)
    return record


def effective_state(record: dict[ConsentKey, Choice]) -> dict[ConsentKey, Choice | None]:
    return {key: consent_rules.effective(record, key) for key in BLANKET_KEYS}


class TestABlanketRefusalRefusesEveryPartner:
    @EXAMPLES
    @given(records_with_blanket(), records_with_blanket())
    def test_a_partner_is_shared_with_only_where_neither_record_refused_it(
        self, survivor: dict[ConsentKey, Choice], other: dict[ConsentKey, Choice]
    ) -> None:
        result = merged(survivor, other)
        for key in PARTNERS:
            mine, theirs = (
                consent_rules.effective(survivor, key),
                consent_rules.effective(other, key),
            )
            if (mine is not None and not mine.granted) or (
                theirs is not None and not theirs.granted
            ):
                assert consent_rules.effective(result, key) == Choice(granted=False)

    @EXAMPLES
    @given(records_with_blanket(), records_with_blanket())
    def test_the_blanket_refusal_carries_over(
        self, survivor: dict[ConsentKey, Choice], other: dict[ConsentKey, Choice]
    ) -> None:
        refused = (
            consent_rules.BLANKET_SHARING in survivor or consent_rules.BLANKET_SHARING in other
        )
        assert (
            merged(survivor, other).get(consent_rules.BLANKET_SHARING) == Choice(False)
        ) is refused

    @EXAMPLES
    @given(records_with_blanket(), records_with_blanket())
    def test_the_order_of_the_two_records_does_not_matter(
        self, one: dict[ConsentKey, Choice], other: dict[ConsentKey, Choice]
    ) -> None:
        assert effective_state(merged(one, other)) == effective_state(merged(other, one))

    @EXAMPLES
    @given(records_with_blanket(), records_with_blanket())
    def test_merging_again_changes_nothing(
        self, survivor: dict[ConsentKey, Choice], other: dict[ConsentKey, Choice]
    ) -> None:
        assert consent_rules.merge_changes(merged(survivor, other), other) == {}

    @EXAMPLES
    @given(records_with_blanket())
    def test_a_record_without_choices_changes_nothing(
        self, survivor: dict[ConsentKey, Choice]
    ) -> None:
        assert consent_rules.merge_changes(survivor, {}) == {}
