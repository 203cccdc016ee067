"""What an API process of the production shape writes to its log: JSON lines only, uvicorn's own
included, and no line per request (the gateway logs requests, /metrics counts them)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx

from pension_shared.testing import free_port
from tests.support.requests import eventually


def test_an_api_process_logs_json_lines_only_and_no_line_per_request(tmp_path: Path) -> None:
    env = {
        **os.environ, "PENSION_ENV": "test", "PENSION_TRANSPORT": "embedded",
        "PENSION_EMBEDDED_LOG_PATH": str(tmp_path / "log"), "PENSION_DATABASE_URL": f"sqlite:///{tmp_path / 'tax.db'}",
    }
    env.pop("PENSION_TOKENS_FILE", None)
    subprocess.run([sys.executable, "-m", "pension_tax", "migrate"], env=env, check=True, capture_output=True, timeout=180)
    port = free_port()
    api = subprocess.Popen([sys.executable, "-m", "pension_tax", "api", "--port", str(port)], env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def up() -> bool:
        assert api.poll() is None, "the API exited"
        try:
            return httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    try:
        eventually(up, timeout_s=120, interval_s=0.2)
        statuses = [httpx.get(f"http://127.0.0.1:{port}{path}", timeout=5).status_code
                    for path in ("/health", "/health", "/v1/no-such-thing")]
        assert statuses == [200, 200, 404]
    finally:
        api.terminate()
        output, _ = api.communicate(timeout=30)
    lines = [line for line in output.splitlines() if line.strip()]
    documents = [json.loads(line) for line in lines]  # every line is one JSON object
    assert any(d["logger"].startswith("uvicorn") and "startup complete" in d["message"] for d in documents), lines
    assert not [line for line in lines if "/health" in line or "/v1/no-such-thing" in line]
