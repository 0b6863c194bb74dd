"""What the tiers share: waiting for a counted event, a database of a test's own on the
session's PostgreSQL, and a backend the operator has verified."""
