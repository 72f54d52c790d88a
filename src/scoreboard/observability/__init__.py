"""Metrics and structured logs: every metric and log setup lives here."""
