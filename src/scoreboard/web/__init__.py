"""The live scoreboard page: static files, no build step."""
