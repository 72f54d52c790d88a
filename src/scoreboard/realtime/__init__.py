"""Live board delivery: one broker subscription per process, fanned out by a hub to WebSocket and
SSE clients through bounded, conflating per-connection mailboxes."""
