"""What runs revision files, never in the operator: `schemagate migrate` (`command`) and
the run under the database's migration lock (`upgrade`), in the `run: Alembic` Job's pod;
`schemagate plan` (`plan_command`), the plan (`plan`) over the offline rendering
(`render`) and squawk (`squawk`); under both, the revision files laid out for Alembic
(`scripts`). Revision files are tenant code; `.importlinter` keeps the operator from
importing this package."""
