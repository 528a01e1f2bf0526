"""Glue between the SDK and the schedulers that run it; each module imports its scheduler lazily."""
