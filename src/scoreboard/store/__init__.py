"""The Store port (the truth) and its adapters: SQLite (embedded default) and PostgreSQL."""
