"""Notifications: a persisted outbox, its delivery to Telegram and a webhook, Telegram commands.

- ``outbox``: pure bookkeeping on the state (enqueue, what each destination still needs,
  acknowledgements, bounds, splitting at a channel's size limit).
- ``messages``: pure texts for a commit's events, start, stop, halts and summaries.
- ``commands``: pure parsing and allow-listing of Telegram updates, and the read-only answers.
- ``deliver``: the short-lived delivery process (``python -m scheduler.notify.deliver``),
  plain urllib: it sends, polls getUpdates, and journals every confirmed send.
- ``service``: the daemon's side: when to start a delivery, backoff, folding the results
  into the state, the ``notifications`` part of /status.

The daemon imports only ``service`` (and what it imports): no HTTP client, nothing heavy.
"""
