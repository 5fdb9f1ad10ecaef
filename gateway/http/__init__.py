"""The HTTP edge: the app factory, endpoint ingress, middleware and the one error-to-HTTP mapping."""
