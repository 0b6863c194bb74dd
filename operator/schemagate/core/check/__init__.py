"""The verification's pure side: what a schema requires, what the database showed, the verdict."""
