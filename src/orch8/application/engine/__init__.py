"""Long-running engine services; they reach the world only through ports."""
