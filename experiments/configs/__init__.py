"""Config files: one ``get_config(variant)`` per experiment and per README table."""
