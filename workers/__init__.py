"""The outbound side: the job queue (``workers.queue``) and the RQ worker
(``workers.run``) that gates and sends messages. Plain Python: a campaign job
needs the settings in its environment, not a Flask application context."""
