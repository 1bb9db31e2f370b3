"""Converters between wire/storage JSON and domain types, shared by the edges."""
