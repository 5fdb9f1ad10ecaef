"""What operators register: apps, endpoints and the per-endpoint request log."""
