# The demo backend of examples/incident: the operator's image (which carries alembic,
# SQLAlchemy and psycopg) with the incident's Alembic project at /app/migrations.
FROM docker.io/library/schemagate:dev
COPY migrations/ /app/migrations/
WORKDIR /app
ENTRYPOINT []
CMD ["sleep", "infinity"]
