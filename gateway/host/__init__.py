"""Hosting plugins: the registry, building each call's context, running plugin jobs, the services' `Host`,
and the composition root (`runtime.open_gateway`)."""
