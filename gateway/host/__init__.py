"""Hosting plugins: the plugin registry, the per-call context, services and the runtime container."""
