"""The prediction API: FastAPI serving the registered housing price model."""
