"""Passwords, access tokens, signing keys and CSRF: how callers prove who they are."""
