"""The pure core: decides reasons, builds status, chooses what to do next. No I/O."""
