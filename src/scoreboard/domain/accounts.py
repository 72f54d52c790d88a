"""Account rules: username and password policy, and the folded form that makes names unique."""

from __future__ import annotations

import re
import unicodedata

USERNAME = re.compile(r"[A-Za-z0-9_.-]{3,32}")
MIN_PASSWORD = 10
MAX_PASSWORD = 1024
MAX_DISPLAY_NAME = 64


def normalize_username(username: str) -> str:
    """The form a username is checked and stored in: NFKC, so fullwidth and other compatibility
    spellings become their plain letters (as the PRECIS username profile maps widths)."""
    return unicodedata.normalize("NFKC", username)


def fold_username(username: str) -> str:
    """The form two usernames must not share: unicode-normalised and case-folded."""
    return unicodedata.normalize("NFKC", username).casefold()


def username_problem(username: str) -> str | None:
    if not USERNAME.fullmatch(username):
        return "username must be 3-32 characters of letters, digits, '_', '.' or '-'"
    return None


def password_problem(password: str) -> str | None:
    if len(password) < MIN_PASSWORD:
        return f"password must be at least {MIN_PASSWORD} characters"
    if len(password) > MAX_PASSWORD:
        return f"password must be at most {MAX_PASSWORD} characters"
    return None


def display_name_problem(display_name: str) -> str | None:
    cleaned = display_name.strip()
    if not cleaned or len(cleaned) > MAX_DISPLAY_NAME:
        return f"display_name must be 1-{MAX_DISPLAY_NAME} characters"
    if any(unicodedata.category(c).startswith("C") for c in cleaned):
        return "display_name must not contain control characters"
    return None
