"""Node-local LLM inference: backends (Ollama container, existing service, embedded llama.cpp) and the
per-job Unix-socket proxy that gives network-less sandboxes access to them."""
