"""The node manager: node startup YAML, capabilities, registration, config apply, heartbeats."""
