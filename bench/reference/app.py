"""The prototype's session API as a competent FastAPI + SQLAlchemy 2 user writes it: the measuring stick.

Three endpoints with the JSON fields of voiceagent's ``/voice/sessions`` contracts, one table,
no authentication and no timeline, as the prototype had them:

    POST /voice/sessions              {customer_id, direction, locale, simulation, ...} -> 201
    GET  /voice/sessions/{id}         -> 200, or 404
    PUT  /voice/sessions/{id}/end     -> 200; ending an ended session returns it unchanged

Sync path operations on a sessionmaker with a connection pool: the pattern of FastAPI's own
SQL tutorial, and the one SQLAlchemy's drivers are built for (sqlite3 and psycopg are blocking;
async SQLite would run each connection in a thread anyway). FastAPI runs them in its thread pool.

    DATABASE_URL=sqlite:///ref.sqlite3 python app.py create-schema
    DATABASE_URL=sqlite:///ref.sqlite3 uvicorn app:app --workers 2

DATABASE_URL takes voiceagent's forms: sqlite:///path (WAL) or postgres://user@host/name.
"""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, HTTPException
from pydantic import BaseModel, ConfigDict, Field, StrictBool
from sqlalchemy import JSON, Boolean, DateTime, Integer, String, Text, TypeDecorator, Uuid, create_engine, event, update
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

TERMINAL_STATUSES = ("ended", "failed")


def engine_for(url: str) -> Engine:
    if url.startswith(("postgres://", "postgresql://")):
        url = "postgresql+psycopg://" + url.split("://", 1)[1]
    if not url.startswith("sqlite"):
        # 32 connections spread over 2 workers: 16 busy at a time in each, a few spare.
        return create_engine(url, pool_size=10, max_overflow=10, pool_pre_ping=False)
    engine = create_engine(url, connect_args={"check_same_thread": False}, pool_size=10, max_overflow=10)

    @event.listens_for(engine, "connect")
    def sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
        # WAL: readers beside the one writer; NORMAL: no fsync per commit in WAL, still durable at checkpoints;
        # busy_timeout: a writer that finds the lock taken waits rather than failing at once.
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=20000")
        cursor.close()

    return engine


engine = engine_for(os.environ.get("DATABASE_URL", "sqlite:///reference.sqlite3"))
SessionLocal = sessionmaker(engine, expire_on_commit=False)


class UTCDateTime(TypeDecorator):
    """Aware UTC datetimes on every database (SQLite gives back naive ones), so JSON carries the offset."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


def now() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    pass


class VoiceSession(Base):
    __tablename__ = "voice_sessions"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    customer_id: Mapped[str] = mapped_column(String(128), index=True)
    agent_type: Mapped[str] = mapped_column(String(16), default="support")
    agent_id: Mapped[str] = mapped_column(String(128), default="")
    direction: Mapped[str] = mapped_column(String(16), default="inbound")
    locale: Mapped[str] = mapped_column(String(35), default="en-US")
    simulation: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[str] = mapped_column(String(16), default="created", index=True)
    connection_type: Mapped[str] = mapped_column(String(16), default="")
    conversation_id: Mapped[str | None] = mapped_column(String(128), unique=True, default=None)
    phone_number: Mapped[str] = mapped_column(String(32), default="")
    dynamic_variables: Mapped[dict] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now, index=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now, onupdate=now)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    end_reason: Mapped[str] = mapped_column(String(16), default="")
    failure_code: Mapped[str] = mapped_column(String(64), default="")
    failure_message: Mapped[str] = mapped_column(Text, default="")
    upstream_status: Mapped[int | None] = mapped_column(Integer, default=None)


class SessionCreate(BaseModel):
    customer_id: str = Field(max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:@-]*$")
    direction: Literal["inbound", "outbound"] = "inbound"
    locale: str = Field("en-US", max_length=35, pattern=r"^[A-Za-z]{2,3}(-[A-Za-z]{4})?(-([A-Za-z]{2}|[0-9]{3}))?$")
    simulation: StrictBool = False
    agent_type: Literal["support", "sales"] = "support"
    phone_number: str = Field("", pattern=r"^(\+[1-9][0-9]{6,14})?$")
    dynamic_variables: dict[str, str | int | float | bool] = Field(default_factory=dict, max_length=50)


class SessionEnd(BaseModel):
    reason: Literal["user", "agent", "operator"] = "user"


class SessionOut(BaseModel):
    """The fields of voiceagent's SessionOutput; created_by and audio_url are always null here."""

    model_config = ConfigDict(from_attributes=True)

    session_id: uuid.UUID = Field(validation_alias="id")
    status: str
    customer_id: str
    created_at: datetime
    agent_type: str
    agent_id: str
    direction: str
    locale: str
    simulation: bool
    connection_type: str
    conversation_id: str | None
    phone_number: str
    dynamic_variables: dict[str, Any]
    created_by: str | None = None
    started_at: datetime | None
    ended_at: datetime | None
    end_reason: str
    failure_code: str
    failure_message: str
    upstream_status: int | None
    updated_at: datetime
    audio_url: str | None = None


def database() -> Iterator[Session]:
    with SessionLocal() as db:
        yield db


Database = Annotated[Session, Depends(database)]
app = FastAPI(title="voiceagent reference (FastAPI + SQLAlchemy)")


@app.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@app.post("/voice/sessions", status_code=201, response_model=SessionOut)
def create_session(body: SessionCreate, db: Database) -> VoiceSession:
    session = VoiceSession(**body.model_dump())
    db.add(session)
    db.commit()
    return session


@app.get("/voice/sessions/{session_id}", response_model=SessionOut)
def get_session(session_id: uuid.UUID, db: Database) -> VoiceSession:
    session = db.get(VoiceSession, session_id)
    if session is None:
        raise HTTPException(status_code=404, detail="No such session.")
    return session


@app.put("/voice/sessions/{session_id}/end", response_model=SessionOut)
def end_session(session_id: uuid.UUID, db: Database, body: SessionEnd | None = None) -> VoiceSession:
    session = db.get(VoiceSession, session_id)
    if session is None:
        raise HTTPException(status_code=404, detail="No such session.")
    if session.status in TERMINAL_STATUSES:
        return session  # ending twice answers with the session as it is
    at = now()
    # The condition on status keeps two concurrent ends from both writing: the first one wins.
    db.execute(
        update(VoiceSession)
        .where(VoiceSession.id == session_id, VoiceSession.status.not_in(TERMINAL_STATUSES))
        .values(status="ended", end_reason=(body or SessionEnd()).reason, ended_at=at, updated_at=at)
    )
    db.commit()
    db.refresh(session)
    return session


def create_schema() -> None:
    Base.metadata.create_all(engine)


if __name__ == "__main__":
    if sys.argv[1:] != ["create-schema"]:
        sys.exit("usage: python app.py create-schema")
    create_schema()
