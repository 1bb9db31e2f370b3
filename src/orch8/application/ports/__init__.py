"""The ports: everything the application needs from the outside world."""
