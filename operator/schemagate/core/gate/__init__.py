"""The gates over plain data: which pods may be Ready, which held pods may start, and
the pods kept."""
