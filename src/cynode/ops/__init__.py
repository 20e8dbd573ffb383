"""Host-side operator tools that need no running CyNode: ``cynode doctor`` and ``cynode sandbox``."""
