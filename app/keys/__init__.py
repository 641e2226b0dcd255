"""Personal API keys: creating, listing and revoking them, and checking them on requests."""
