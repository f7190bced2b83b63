"""The lifecycle rules, written once above every store backend.

Transitions, attempts, waits, deadlines, reminders, escalation, decisions and timers live
here, as functions over a `Tx` (`lifecycle/tx.py`): named queries with named parameters,
rows read by column name. A backend supplies the SQL (its `queries.sql`), the transaction
and its locking; no module here imports a database driver.
"""
