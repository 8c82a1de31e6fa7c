"""Operating the dispatcher: the worker's probe and metrics port, the API's metrics, and the
operator commands (provider overrides, the dead-letter queue, `top`, the effective config)."""
