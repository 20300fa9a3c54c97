"""Placeholder; filled in by the test-infrastructure work (issue 3)."""
