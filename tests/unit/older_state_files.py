"""State files as an older commsproxy left them: later migrations undone, for upgrade tests."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from commsproxy.triage.state_store import _MIGRATIONS


def migration_creating(table: str) -> int:
    """The index of the migration that creates ``table``."""
    return next(
        i for i, step in enumerate(_MIGRATIONS) if any(f"TABLE {table} " in s for s in step)
    )


def undo_migrations_from(path: Path, version: int) -> None:
    """Undo migration ``version`` and every later one in the state file at ``path``."""
    older = sqlite3.connect(path)
    for step in reversed(_MIGRATIONS[version:]):
        for statement in reversed(step):
            words = statement.split()
            if statement.startswith("CREATE TABLE "):
                older.execute(f"DROP TABLE {words[2]}")
            elif statement.startswith("ALTER TABLE ") and words[3:5] == ["ADD", "COLUMN"]:
                older.execute(f"ALTER TABLE {words[2]} DROP COLUMN {words[5]}")
    older.execute(f"PRAGMA user_version = {version}")
    older.close()
