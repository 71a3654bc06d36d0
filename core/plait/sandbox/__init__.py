"""A subprocess sandbox for LM-written Python (used by ProgramOfThought). See docs/sandbox.md."""

from plait.sandbox.sandbox import Sandbox, SandboxError, SandboxResult

__all__ = ["Sandbox", "SandboxError", "SandboxResult"]
