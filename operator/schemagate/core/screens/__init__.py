"""What `kubectl schemagate` shows, from the objects the operator already writes: plain
data in (the DatabaseSchema, its pods, its Events, its Job, as the API serves them),
screens out, as text or as JSON."""
