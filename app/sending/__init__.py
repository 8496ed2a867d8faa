"""Everything about one outbound message, from the queue to the provider.

- ``outbox``: a message or a campaign becomes ``queued`` rows (validation, bulk inserts);
- ``sender``: claims, decides and hands each message to its provider;
- ``policy``: the decision itself (consent, flags, quiet hours, frequency limits);
- ``quiet``: quiet hours by the recipient's time zone;
- ``limits``: marketing frequency limits;
- ``handoff``: the protocol that makes "nothing leaves after a STOP was answered" true.

The queue transport (Redis, RQ) is in ``workers/``; nothing here imports it.
"""
