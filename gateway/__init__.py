"""OpenAI-compatible streaming LLM gateway with PHI redaction."""

__version__ = "0.1.0"
