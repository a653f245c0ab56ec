"""The page's tabs, one module per concern; `app/main.py` composes them."""
