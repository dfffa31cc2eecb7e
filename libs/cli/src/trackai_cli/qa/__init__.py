"""`trackai qa`: the release gate's 15-item checklist (docs/qa-checklist.md), run against a stack.

``checklist`` names the items, ``checks`` drives each one through the real services, ``report``
writes the Markdown and JUnit reports and a ready-to-file bug report per failure.
"""
