"""The `dify-gateway` command line."""
