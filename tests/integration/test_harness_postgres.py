"""The PostgreSQL fixtures give real, isolated databases reachable through SQLAlchemy."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

pytestmark = pytest.mark.postgres


def test_session_database_accepts_sqlalchemy_connections(postgres_url: str) -> None:
    engine = sa.create_engine(postgres_url)
    try:
        with engine.begin() as conn:
            version = conn.execute(sa.text("SELECT version()")).scalar_one()
            db = conn.execute(sa.text("SELECT current_database()")).scalar_one()
    finally:
        engine.dispose()
    assert "PostgreSQL" in version
    assert postgres_url.endswith(f"/{db}")
    assert postgres_url.startswith("postgresql+psycopg2://")


@pytest.mark.parametrize("round_", [1, 2])
def test_each_test_gets_a_fresh_database(postgres_db_url: str, postgres_url: str, round_: int) -> None:
    # Both rounds create the same table: this only works if the second one sees an empty database.
    assert postgres_db_url != postgres_url
    engine = sa.create_engine(postgres_db_url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("CREATE TABLE probe (n integer)"))
            conn.execute(sa.text("INSERT INTO probe VALUES (:n)"), {"n": round_})
            assert conn.execute(sa.text("SELECT n FROM probe")).scalars().all() == [round_]
    finally:
        engine.dispose()
