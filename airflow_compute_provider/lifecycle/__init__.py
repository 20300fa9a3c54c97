"""The steps of one try, provider-agnostic (see each module)."""
