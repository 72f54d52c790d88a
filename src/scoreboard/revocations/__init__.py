"""The Revocations port (revoked access-token ids) and its adapters: memory and Redis."""
