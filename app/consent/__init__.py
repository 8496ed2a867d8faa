"""Consent: the ledger (the only code that changes consent), the rules that
decide a number's effective status on a line, and the queries over both.

Import the submodules directly (``from app.consent import ledger``): this
package's ``__init__`` stays empty so that ``app.data.models`` can use
``app.consent.values`` without an import cycle.
"""
