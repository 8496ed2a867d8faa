"""Storage: the engine and sessions (db), the tables (models), and the schema's
migrations (migrate, migrations/). Nothing here knows what consent means."""
