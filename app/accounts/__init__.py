"""People who use the admin console: accounts (``users``) and signing in (``logins``).

Domain code: no Flask. The console (app/web/console) and ``optgate users``
call these functions; nothing else writes the ``users`` table.
"""
