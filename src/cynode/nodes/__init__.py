"""Worker nodes as the control plane sees them: registration, capabilities, config, heartbeats."""
