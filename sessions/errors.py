"""What the domain refuses: a request about a session that its state does not allow.

Each is an :class:`~voiceagent.errors.ApplicationError` with its status and code, so every API
answers it in the one error shape.
"""

from __future__ import annotations

from voiceagent.errors import ApplicationError


class SessionError(ApplicationError):
    """A request about a session that its current state does not allow."""


class InvalidTransition(SessionError):
    status = 409
    code = "invalid_transition"

    def __init__(self, session, target: str):
        self.session = session
        self.current_status = session.status
        self.target = target
        super().__init__(
            f"Session {session.id} is {session.status}; it cannot become {target}.", current_status=session.status
        )


class ConversationAlreadyClaimed(SessionError):
    status = 409
    code = "conversation_claimed"

    def __init__(self, conversation_id: str):
        self.conversation_id = conversation_id
        super().__init__(
            f"Conversation {conversation_id} already belongs to another session.", conversation_id=conversation_id
        )


class ConversationMismatch(SessionError):
    """The client reports a conversation other than the one bound to the session when it started."""

    status = 409
    code = "conversation_mismatch"

    def __init__(self, session, conversation_id: str):
        self.conversation_id = conversation_id
        self.bound_conversation_id = session.conversation_id
        super().__init__(
            f"Session {session.id} is bound to another conversation; {conversation_id} is not its conversation.",
            conversation_id=conversation_id,
        )
