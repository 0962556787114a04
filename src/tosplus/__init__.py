"""TOS+: an open operating platform for connected things."""

__version__ = "0.1.0"
