"""orch8: a durable workflow and campaign-sequence engine."""

__version__ = "0.1.0"
