"""California housing price prediction: shared domain code."""
