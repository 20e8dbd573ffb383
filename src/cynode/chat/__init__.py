"""OpenAI-compatible chat: the gateway routes, secret redaction, threads and messages, and routing
a chat through the orchestrator to a node that serves its model."""
