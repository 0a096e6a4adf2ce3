"""`homenode` commands: ops (filled in by its own issue)."""
