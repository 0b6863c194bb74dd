"""What a migration plan would do, decided over the rendered SQL: its statements and the
changes in them (`sql`), what the serving version declares (`serving`), the findings
(`findings`) and how they are printed (`report`)."""
