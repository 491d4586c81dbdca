"""Rate limits and token quotas: GCRA arithmetic, the counter stores and the limiter."""
