"""PHI detection evaluation: a generated Safe Harbor corpus (Faker + clinical templates, split by
template) and its scorer. Run ``.venv/bin/python -m bench.phi_eval``. Unlike the HTTP bench this
imports ``gateway.phi`` directly: it measures the pure detector, not the service."""
