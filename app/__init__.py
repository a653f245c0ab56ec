"""Streamlit front end: prices districts through the prediction API over HTTP only."""
