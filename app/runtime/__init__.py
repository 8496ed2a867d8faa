"""Running optgate: the web server (serve), the local all-in-one run (devrun),
and the check-ins that keep gunicorn from killing a long request (heartbeat)."""
