"""The launcher: ``python -m trackai_sandbox serve --only meta`` starts the Meta fake with its
demo pixel (the provisioning fakes have their own launcher test, ``test_stape_launcher.py``)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import httpx
import pytest

from trackai_sandbox.launcher import FAKES, listeners
from trackai_sandbox.settings import SandboxSettings
from trackai_testing.ports import free_port


def test_listeners_follow_settings() -> None:
    settings = SandboxSettings(meta_port=18999, gtm_port=18998, host="0.0.0.0")
    [meta] = listeners(settings, only=["meta"])
    assert (meta.name, meta.host, meta.port) == ("meta", "0.0.0.0", 18999)
    assert [fake.name for fake in FAKES] == ["meta", "cloudflare", "stape", "gtm", "llm", "sentry"]
    assert dict((x.name, x.port) for x in listeners(settings))["gtm"] == 18998
    with pytest.raises(ValueError, match="unknown fake"):
        listeners(settings, only=["openai"])


def test_serve_answers_with_the_demo_pixel_and_stops_on_sigterm() -> None:
    port = free_port()
    env = {**os.environ, "SANDBOX_META_PORT": str(port), "LOG_JSON": "false"}
    process = subprocess.Popen(
        # Only Meta: the other fakes would bind their default ports 8011-8013.
        [sys.executable, "-m", "trackai_sandbox", "serve", "--only", "meta"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 15
        while True:
            try:
                httpx.get(f"{base}/_sandbox/health", timeout=0.5).raise_for_status()
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "sandbox did not start"
                time.sleep(0.1)
        event = {
            "event_name": "Lead",
            "event_time": int(time.time()),
            "action_source": "system_generated",
            "user_data": {"external_id": "lead-1"},
        }
        answer = httpx.post(
            f"{base}/v25.0/1234567890/events",
            params={"access_token": "sandbox-token"},
            json={"data": [event]},
        )
        assert answer.json()["events_received"] == 1
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
