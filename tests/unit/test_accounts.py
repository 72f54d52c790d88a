"""Account policies and the folded username that makes names unique."""

from __future__ import annotations

import pytest

from scoreboard.domain.accounts import (
    MAX_DISPLAY_NAME,
    MAX_PASSWORD,
    MIN_PASSWORD,
    display_name_problem,
    fold_username,
    password_problem,
    username_problem,
)


@pytest.mark.parametrize("username", ["bob", "alice_1", "a.b-c", "X" * 32, "007"])
def test_acceptable_usernames(username: str) -> None:
    assert username_problem(username) is None


@pytest.mark.parametrize(
    "username",
    [
        "",
        "ab",
        "X" * 33,
        "has space",
        "semi;colon",
        "émile",
        "\uff46\uff55\uff4c\uff4c",
        "tab\t",
        "new\nline",
        "a@b",
    ],
)
def test_unacceptable_usernames(username: str) -> None:
    assert (
        username_problem(username) == "username must be 3-32 characters of letters, digits, '_', '.' or '-'"
    )


def test_password_length_bounds() -> None:
    assert password_problem("x" * MIN_PASSWORD) is None
    assert password_problem("x" * MAX_PASSWORD) is None
    assert password_problem("x" * (MIN_PASSWORD - 1)) == "password must be at least 10 characters"
    assert password_problem("x" * (MAX_PASSWORD + 1)) == "password must be at most 1024 characters"


@pytest.mark.parametrize("name", ["Alice", "Émile Zola", "  padded  ", "x" * MAX_DISPLAY_NAME, "日本語"])
def test_acceptable_display_names(name: str) -> None:
    assert display_name_problem(name) is None


@pytest.mark.parametrize("name", ["", "   ", "x" * (MAX_DISPLAY_NAME + 1)])
def test_display_name_must_have_1_to_64_characters(name: str) -> None:
    assert display_name_problem(name) == "display_name must be 1-64 characters"


@pytest.mark.parametrize("name", ["bell\x07", "a\nb", "zero\u200bwidth", "nul\x00"])
def test_display_name_refuses_control_characters(name: str) -> None:
    assert display_name_problem(name) == "display_name must not contain control characters"


def test_fold_username_ignores_case() -> None:
    assert fold_username("Alice") == fold_username("ALICE") == fold_username("alice") == "alice"


def test_fold_username_casefolds_beyond_lowercase() -> None:
    assert fold_username("STRASSE") == fold_username("straße")


def test_fold_username_normalises_compatibility_forms() -> None:
    assert fold_username("\uff21\uff4c\uff49\uff43\uff45") == "alice"  # full-width letters
    assert fold_username("\ufb01sh") == "fish"  # the fi ligature
