"""raas: results as a service."""
