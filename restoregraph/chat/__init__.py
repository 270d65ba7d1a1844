"""Chat-driven restoration: route a user's words to the fast path (only the named tasks), the
full agent, or a follow-up on the current result (undo, go back, milder / stronger).

* ``restoregraph.chat.router``     -- ``Route`` and the offline / LLM routers;
* ``restoregraph.chat.classifier`` -- MiniLM embeddings + the shipped softmax head;
* ``restoregraph.chat.session``    -- ``ChatSession`` / ``ChatReply`` (acts through ``Runner``).
"""

from __future__ import annotations

from typing import Any

__all__ = ["ChatReply", "ChatSession", "LLMRouter", "Route", "RuleRouter", "make_router"]


def __getattr__(name: str) -> Any:  # lazy: importing the package stays cheap
    if name in ("ChatReply", "ChatSession"):
        from restoregraph.chat import session

        return getattr(session, name)
    if name in ("LLMRouter", "Route", "RuleRouter", "make_router"):
        from restoregraph.chat import router

        return getattr(router, name)
    raise AttributeError(name)
