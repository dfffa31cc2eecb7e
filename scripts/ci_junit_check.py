"""Judge a pytest JUnit report for CI: fail when no test ran, or when a test skipped for a tool.

A test that skips because a tool or package CI is expected to have is absent (``require_tool``
from ``trackai_testing`` says "missing tool:", ``pytest.importorskip`` says "could not import")
would otherwise leave a silently skipped suite looking green.
"""

from __future__ import annotations

import sys
import xml.etree.ElementTree as ET

REFUSED_SKIPS = ("missing tool:", "could not import")


def problems(junit_path: str) -> tuple[int, list[str]]:
    """Tests that ran, and the skips CI refuses (``classname.name: message``)."""
    root = ET.parse(junit_path).getroot()  # noqa: S314 - our own pytest's report
    suites = [root] if root.tag == "testsuite" else list(root)
    ran = sum(int(s.get("tests", 0)) - int(s.get("skipped", 0)) for s in suites)
    refused = [
        f"{case.get('classname')}.{case.get('name')}: {skip.get('message')}"
        for case in root.iter("testcase")
        for skip in case.findall("skipped")
        if any(word in (skip.get("message") or "") for word in REFUSED_SKIPS)
    ]
    return ran, refused


def main(argv: list[str]) -> int:
    ran, refused = problems(argv[1] if len(argv) > 1 else ".ci-junit.xml")
    if ran == 0:
        sys.stderr.write("CI: no test ran\n")
        return 1
    if refused:
        sys.stderr.write("CI: tests skipped for a tool CI must have:\n")
        sys.stderr.writelines(f"  {line}\n" for line in refused)
        return 1
    sys.stdout.write(f"CI: {ran} tests ran\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
