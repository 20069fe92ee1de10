"""ignity: a container init and process supervisor (see SPEC and docs/)."""

__version__ = "0.1.0"
