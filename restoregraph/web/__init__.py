"""The web app (``restoregraph serve``): upload, chat, live plan, step gallery, undo, download.

* ``session``: the logic (uploads, conversations, runs, views), no UI code;
* ``progress``: the live plan text from the graph's stream events;
* ``app``: the gradio page; ``server``: privacy settings and ``serve()``.
"""

from restoregraph.web.server import serve

__all__ = ["serve"]
