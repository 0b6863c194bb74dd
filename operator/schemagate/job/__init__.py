"""What runs in the `run: Alembic` Job's pod, never in the operator: `schemagate migrate`
(`command`), the revision files laid out for Alembic (`scripts`) and the run under the
database's migration lock (`upgrade`). Revision files are tenant code; `.importlinter`
keeps the operator from importing this package."""
