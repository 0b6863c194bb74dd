# The demo backend of examples/incident: the operator's image (which carries alembic,
# SQLAlchemy and psycopg) with the incident's Alembic project at /app/migrations and
# the backend itself, localenv/backend.py, at /app/backend.py. Its CMD checks the
# backend's tables through DATABASE_URL at start-up and exits 3 when any is missing
# (as the incident's backend did), else serves HTTP on port 8000. A pod that must not
# check (the tests' idle backends, the migration Jobs schemagate clones) sets its
# own `command`, e.g. ["sleep", "infinity"]: the CMD then never runs.
FROM docker.io/library/schemagate:dev
COPY migrations/ /app/migrations/
COPY backend.py /app/backend.py
WORKDIR /app
ENTRYPOINT []
CMD ["python", "/app/backend.py"]
