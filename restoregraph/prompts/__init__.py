"""Prompt templates for language-model planners."""

from __future__ import annotations

from restoregraph.prompts.plan import (
    SYSTEM_PROMPT,
    render_retry_prompt,
    render_user_prompt,
)

__all__ = ["SYSTEM_PROMPT", "render_retry_prompt", "render_user_prompt"]
