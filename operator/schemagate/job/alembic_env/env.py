"""schemagate's Alembic environment, copied beside the ConfigMap's revision files.

The connection and every setting come from `schemagate.job.upgrade.upgrade` through
`config.attributes`: no alembic.ini, no URL, nothing read from the environment, so the
revisions run exactly where the DatabaseSchema says, on the connection that holds the
migration lock. That connection is already inside the one transaction of the run, so
`begin_transaction` below commits nothing itself.
"""

from alembic import context

config = context.config
context.configure(connection=config.attributes["connection"], **config.attributes["configure"])
with context.begin_transaction():
    context.run_migrations()
