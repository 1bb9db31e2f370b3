"""Calendar arithmetic: pure functions of a definition, an instant and a seed."""
