"""User tasks and their jobs as the gateway sees them: create, list, get, result, logs, cancel."""
