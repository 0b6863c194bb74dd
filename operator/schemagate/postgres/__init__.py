"""The PostgreSQL edge, the only part of the operator that talks to the database.

`connect` turns the backend's URL into a session and its failures into
`ConnectionFailed` or `InvalidDatabaseUrl` (both a `DatabaseError`); `deadlines` bounds
that session whatever the server or the network does; `catalog` is the check, with
`search` for missing tables in the server's other databases; `snapshot` reads the
columns of named tables for `schemagate snapshot`; `statements` holds what they read
alike. The migration Job (`schemagate.job`) connects through `connect` as well.
"""
