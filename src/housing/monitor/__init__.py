"""Production monitoring: what the served model's traffic is compared with (docs/monitoring.md)."""
