"""Migrations over plain data: the Jobs, what to do next, the judgement by the database."""
