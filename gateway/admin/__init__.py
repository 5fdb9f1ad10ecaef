"""The admin API under `/admin/api`: everything the CLI does, over JSON with a bearer token; the
operations both share (`usecases`)."""
