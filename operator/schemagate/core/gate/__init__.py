"""The readiness gate over plain data: which pods may be Ready, and the pods kept."""
