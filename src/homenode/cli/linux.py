"""`homenode` commands: linux (filled in by its own issue)."""
