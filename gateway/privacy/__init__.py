"""The PHI stage of the pipeline (policy, input redaction, answer transducers), between the
pipeline and the pure ``gateway.phi`` package: the pipeline calls it in a few lines."""

from gateway.privacy.session import PhiSession, Privacy

__all__ = ["PhiSession", "Privacy"]
