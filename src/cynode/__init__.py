"""CyNode: a local-first orchestrator for self-hosted teams."""

__version__ = "0.1.0"
