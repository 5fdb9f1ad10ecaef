"""Durable jobs: the queue, the workers that run them, the lease that fences each run, and what a
plugin job stores."""
