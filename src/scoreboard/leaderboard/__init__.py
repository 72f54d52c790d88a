"""The Leaderboard port (the ranked cache with epoch and seq) and its adapters: memory and Redis."""
