"""Domain services of the central server: plain async functions over a session."""
