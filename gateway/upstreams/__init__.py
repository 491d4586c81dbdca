"""Upstreams: where completions are served (LiteLLM proxy, OpenAI-compatible servers)."""
