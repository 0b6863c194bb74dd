"""The PostgreSQL edge: the only part of the operator that talks to the database."""
