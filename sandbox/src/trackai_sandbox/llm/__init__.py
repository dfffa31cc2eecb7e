"""Local fake of an OpenAI-compatible chat-completions endpoint that follows scripts: tool calls,
text (streamed or not), HTTP errors and hangs, with a ``/_sandbox`` control API for tests."""

from __future__ import annotations

from fastapi import FastAPI

from trackai_sandbox.llm.app import DEMO_KEY, LlmState, create_app
from trackai_sandbox.settings import SandboxSettings

__all__ = ["DEMO_KEY", "LlmState", "build_app", "create_app"]


def build_app(settings: SandboxSettings) -> FastAPI:
    """The fake as the launcher serves it (no script: it calls the last offered tool, then
    summarises the tool's result)."""
    return create_app(LlmState())
