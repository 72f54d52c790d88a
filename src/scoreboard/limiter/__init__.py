"""The RateLimiter port and its adapters (memory, Redis), both built on the `limits` library."""
