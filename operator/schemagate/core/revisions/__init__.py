"""Revision files and revisions: which ConfigMap keys are revision files (`keys`), their
identifiers read without running them (`scan`), the heads and graph they make (`graph`,
the one reader of revision files), and whether a database has applied a revision
(`applied`)."""
