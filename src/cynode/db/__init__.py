"""PostgreSQL access: the connection pool, schema migrations and the embedded private cluster."""
