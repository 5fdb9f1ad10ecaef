"""Durable jobs: the queue, the workers that run them and the lease that fences each run."""
