"""`homenode` commands: compare (filled in by its own issue)."""
