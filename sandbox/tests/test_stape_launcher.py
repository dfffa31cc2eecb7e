"""``python -m trackai_sandbox serve --only cloudflare --only stape --only gtm``: the provisioning
fakes on their own ports in one process, Stape verifying a domain against the Cloudflare fake."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import httpx

from trackai_sandbox.cloudflare import DEMO_TOKEN, DEMO_ZONE_ID
from trackai_sandbox.stape import ANONYMIZE_KEYS, DEMO_KEY
from trackai_testing.ports import free_port


def _wait_healthy(base: str) -> None:
    deadline = time.monotonic() + 15
    while True:
        try:
            httpx.get(f"{base}/_sandbox/health", timeout=0.5).raise_for_status()
            return
        except httpx.TransportError:
            assert time.monotonic() < deadline, f"{base} did not start"
            time.sleep(0.1)


def test_launcher_serves_the_three_and_stape_resolves_through_cloudflare() -> None:
    ports = {name: free_port() for name in ("cloudflare", "stape", "gtm")}
    env = {
        **os.environ,
        "LOG_JSON": "false",
        "SANDBOX_STAPE_READY_AFTER_S": "0",
        **{f"SANDBOX_{name.upper()}_PORT": str(port) for name, port in ports.items()},
    }
    only = [arg for name in ports for arg in ("--only", name)]
    process = subprocess.Popen(
        [sys.executable, "-m", "trackai_sandbox", "serve", *only],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        cloudflare, stape, gtm = (f"http://127.0.0.1:{port}" for port in ports.values())
        for base in (cloudflare, stape, gtm):
            _wait_healthy(base)
        accounts = httpx.get(
            f"{gtm}/tagmanager/v2/accounts", headers={"Authorization": "Bearer t"}
        ).json()
        assert accounts["account"][0]["accountId"] == "6000000001"

        key = {"X-AUTH-TOKEN": DEMO_KEY}
        container = httpx.post(
            f"{stape}/api/v2/containers",
            headers=key,
            json={
                "name": "acme",
                "code": "c" * 64,
                "anonymizeOptions": dict.fromkeys(ANONYMIZE_KEYS, "n"),
                "zone": {"type": "eu"},
            },
        ).json()["body"]
        domains = f"{stape}/api/v2/containers/{container['identifier']}/domains"
        domain = httpx.post(
            domains, headers=key, json={"name": "acme.track.trackai.test", "useCnameRecord": True}
        ).json()["body"]
        httpx.post(
            f"{cloudflare}/client/v4/zones/{DEMO_ZONE_ID}/dns_records",
            headers={"Authorization": f"Bearer {DEMO_TOKEN}"},
            json={
                "type": "CNAME",
                "name": "acme.track",
                "content": domain["records"][0]["value"],
                "ttl": 1,
                "proxied": False,
            },
        ).raise_for_status()
        verified = httpx.post(f"{domains}/{domain['identifier']}/revalidate", headers=key).json()[
            "body"
        ]
        assert verified["status"]["type"] == "verified"
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
