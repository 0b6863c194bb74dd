"""The status a DatabaseSchema shows: one check's outcome folded into conditions."""
