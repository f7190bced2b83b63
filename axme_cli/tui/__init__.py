"""`axme tui`: the approval inbox and a live view of intents and agents, in Textual.

The app is a client of the daemon's API like any other: every request runs in a Textual
worker over `AsyncDaemonClient`, and what is on screen changes when the daemon's watch feed
says something changed, not on a polling timer.
"""
