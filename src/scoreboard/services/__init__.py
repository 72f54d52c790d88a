"""Use cases: each service function takes plain values, talks to ports, returns plain values."""
