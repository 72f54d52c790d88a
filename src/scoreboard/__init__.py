"""scoreboard: a live top-10 scoreboard that keeps scores honest and screens instant."""

__version__ = "0.1.0"
