"""schemagate: hold a backend NotReady until its database schema is really there."""
__version__ = "0.1.0"
