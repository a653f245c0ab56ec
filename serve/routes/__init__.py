"""Thin routers: each handler validates through its schema, calls the store or model, answers."""
