"""generator layer."""
