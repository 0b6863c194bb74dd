"""The DatabaseSchema API as it travels: the resource models and the one vocabulary of reasons."""
