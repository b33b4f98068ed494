"""leadscore: SQL-first feature store and nightly batch scoring for B2B lead conversion."""

__version__ = "0.1.0"
