"""The agent's domain: tool verdicts, the guided flow and the escalation rule; no I/O."""
