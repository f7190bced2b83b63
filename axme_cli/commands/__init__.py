"""One module per noun; each `register`s its commands on the root app."""
