"""user/cli."""
