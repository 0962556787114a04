import asyncio
from pathlib import Path

import sqlalchemy as sa

from tosplus.storage import tables as t
from tosplus.storage.engine import open_database
from tosplus.storage.group_commit import GroupCommit


async def test_concurrent_writes_share_transactions_and_all_land(tmp_path: Path) -> None:
    engine = await open_database(f"sqlite+aiosqlite:///{tmp_path / 'g.db'}")
    try:
        group = GroupCommit(engine)
        insert = sa.insert(t.api_tokens)
        rows = [
            {"id": f"t{i}", "token_hash": f"h{i}", "name": "n", "role": "admin", "created_at": i} for i in range(200)
        ]
        await asyncio.gather(*(group.execute(insert, row) for row in rows))
        async with engine.connect() as conn:
            assert (await conn.execute(sa.select(sa.func.count()).select_from(t.api_tokens))).scalar() == 200
        # A failing group reports the failure to every writer in it, and the next group works again.
        duplicate = group.execute(insert, rows[0])
        try:
            await duplicate
            raise AssertionError("a duplicate key must fail")
        except sa.exc.IntegrityError:
            pass
        await group.execute(insert, {**rows[0], "id": "fresh", "token_hash": "fresh"})
    finally:
        await engine.dispose()
