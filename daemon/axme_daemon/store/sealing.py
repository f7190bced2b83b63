"""Secrets the store keeps are sealed with a key kept beside it, not in it.

Agents' `env` (API tokens, passwords) and webhooks' `secret` and URL (a chat webhook's path
is its token) are encrypted with Fernet (AES-128-CBC with an HMAC-SHA256) under a key in
the home's `secrets.key` (0600). A copy of `axme.db` alone (a backup, a file attached to a
bug report) then holds no usable secret; read access to the whole home still gives all of
them, key included: the home is private (0700) for that reason.

A sealed field `NAME` is stored as `NAME_sealed`: the Fernet token of its JSON.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, InvalidToken

from axme_daemon.lifecycle.timeline import dump

#: What is sealed in each kind of stored record.
AGENT_FIELDS = ("env",)
HOOK_FIELDS = ("secret", "webhook")
_SUFFIX = "_sealed"


class SealedUnreadable(Exception):
    """A sealed field that the home's key does not open (the key file was replaced)."""


class BadKeyFile(Exception):
    """The home's key file holds no Fernet key."""


def load_or_create_key(path: Path) -> bytes:
    """The key in `path` (made 0600 if it was not), created 0600 on first use."""
    try:
        key = path.read_bytes().strip()
    except FileNotFoundError:
        return _create_key(path)
    os.chmod(path, 0o600)
    try:
        Fernet(key)
    except ValueError:
        raise BadKeyFile(
            f"{path} holds no valid key; restore it from a backup (without it, the secrets"
            " sealed in axme.db cannot be read: move both aside to start afresh)"
        ) from None
    return key


def _create_key(path: Path) -> bytes:
    """Written whole under a temporary name, then renamed, and the directory synced: the key
    is on disk before any secret sealed with it can be."""
    key = Fernet.generate_key()
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, key + b"\n")
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return key


class Sealer:
    def __init__(self, key_file: Path) -> None:
        self.key_file = key_file
        self._fernet = Fernet(load_or_create_key(key_file))

    def seal(self, record: Mapping[str, Any], fields: Sequence[str]) -> dict[str, Any]:
        """`record` with each of `fields` that holds something replaced by its sealed form."""
        out = dict(record)
        for name in fields:
            value = out.pop(name, None)
            if value:
                token = self._fernet.encrypt(json.dumps(value).encode())
                out[name + _SUFFIX] = token.decode()
        return out

    def unseal(self, record: Mapping[str, Any], fields: Sequence[str]) -> dict[str, Any]:
        """The record as it was given to `seal` (plain fields of older rows pass as they are)."""
        out = dict(record)
        for name in fields:
            token = out.pop(name + _SUFFIX, None)
            if token is None:
                continue
            try:
                out[name] = json.loads(self._fernet.decrypt(token.encode()))
            except InvalidToken:
                raise SealedUnreadable(
                    f"{name}: sealed with a key other than the one in {self.key_file}"
                ) from None
        return out


def has_plain(record: Mapping[str, Any], fields: Sequence[str]) -> bool:
    """Whether `record` (as stored by an older version) holds one of `fields` unsealed."""
    return any(record.get(name) for name in fields)


def seal_plain_rows(db: sqlite3.Connection, sealer: Sealer) -> int:
    """Seal what an older version stored in plain text; return the rows rewritten.

    `secure_delete` zeroes the old bytes in the pages the rows leave, and the WAL that still
    holds them is checkpointed and truncated, so no plain copy stays in the files."""
    agents = [
        (address, json.loads(spec))
        for address, spec in db.execute("SELECT address, spec FROM agents").fetchall()
    ]
    projects = [
        (path, json.loads(hooks or "[]"))
        for path, hooks in db.execute("SELECT config_path, hooks FROM projects").fetchall()
    ]
    agents = [(a, s) for a, s in agents if has_plain(s, AGENT_FIELDS)]
    projects = [(p, h) for p, h in projects if any(has_plain(x, HOOK_FIELDS) for x in h)]
    if not agents and not projects:
        return 0
    db.execute("PRAGMA secure_delete=ON")
    try:
        db.execute("BEGIN IMMEDIATE")
        for address, spec in agents:
            sealed = sealer.seal(spec, AGENT_FIELDS)
            db.execute("UPDATE agents SET spec = ? WHERE address = ?", (dump(sealed), address))
        for path, hooks in projects:
            sealed_hooks = [sealer.seal(hook, HOOK_FIELDS) for hook in hooks]
            db.execute(
                "UPDATE projects SET hooks = ? WHERE config_path = ?", (dump(sealed_hooks), path)
            )
        db.execute("COMMIT")
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        if db.in_transaction:
            db.execute("ROLLBACK")
        db.execute("PRAGMA secure_delete=OFF")
    return len(agents) + len(projects)
