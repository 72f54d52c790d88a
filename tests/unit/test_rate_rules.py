"""Rate-limit rules as written in settings, and the RateLimit-Policy header they advertise."""

from __future__ import annotations

import pytest

from scoreboard.limiter.base import Rules


@pytest.mark.parametrize("spec", ["off", "OFF", " none ", "", "  "])
def test_off_disables_the_rules(spec: str) -> None:
    rules = Rules.parse("login", spec)

    assert not rules.enabled
    assert rules.items == ()
    assert rules.policy == ""


def test_policy_header_lists_each_limit_with_its_window() -> None:
    rules = Rules.parse("score_updates", "10/second;300/minute")

    assert rules.enabled
    assert rules.name == "score_updates"
    assert [item.amount for item in rules.items] == [10, 300]
    assert rules.policy == '"score_updates-1s";q=10;w=1, "score_updates-60s";q=300;w=60'


def test_single_limit_policy() -> None:
    assert Rules.parse("login", "5/minute").policy == '"login-60s";q=5;w=60'
    assert Rules.parse("quota", "3 per hour").policy == '"quota-3600s";q=3;w=3600'


@pytest.mark.parametrize("spec", ["banana", "10/fortnight", "ten/second"])
def test_bad_spec_names_the_rule_and_the_spec(spec: str) -> None:
    with pytest.raises(ValueError, match=f"rate limit login: cannot parse '{spec}'"):
        Rules.parse("login", spec)


def test_policy_names_are_structured_field_strings_even_with_quotes_in_them() -> None:
    rules = Rules.parse('quota:say "hi"\\', "3/hour")

    assert rules.policy == '"quota:say \\"hi\\"\\\\-3600s";q=3;w=3600'
