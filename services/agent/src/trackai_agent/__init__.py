"""Agent: the setup assistant (tools, transcripts, hand-over to a human)."""
