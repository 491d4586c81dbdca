"""PHI handling: detection, input redaction, streaming transducers (pure cores); vault later."""
