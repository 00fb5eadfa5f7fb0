"""All stages: the fednode command line."""
