"""Peak memory of uploading one large file to Dify (POST /files/upload, streamed from disk), in a fresh process.

    python bench/upload_memory.py [--megabytes 200]

The file is sent to the project's fake Dify by the client the runners use, over each HTTP transport; the figure
is the process's peak resident memory (VmHWM) before and after the upload: a client that read the file whole
would add its size.
"""

from __future__ import annotations

import argparse
import os
import secrets
import subprocess
import sys
import tempfile
from pathlib import Path

from common import ROOT

sys.path.insert(0, str(ROOT))
from fakedify.harness import running_fake_dify  # noqa: E402

UPLOAD = """
import asyncio, sys, time, django
from pathlib import Path
def peak(): return int(next(l for l in open('/proc/self/status') if l.startswith('VmHWM')).split()[1]) // 1024
django.setup()
from batches.dify.client import DifyClient
from batches.dify.types import AppSettings
async def main(path, url, transport):
    app = AppSettings(mode="workflow", base_url=url, api_key="app-bench-key", timeout=600)
    async with DifyClient(transport=transport) as client:
        small = Path(path).with_name("small.txt")
        small.write_bytes(b"warm-up")
        await client.upload(app, small, filename="small.txt", user="bench")  # imports and pools warmed
        before = peak()
        started = time.monotonic()
        result = await client.upload(app, Path(path), filename="big.pdf", user="bench")
        return before, peak(), time.monotonic() - started, result
before, after, seconds, result = asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3]))
assert result.ok, result.error
print(before, after, round(seconds, 2), result.outputs["size"])
"""


def measure(path: Path, url: str, transport: str) -> list[str]:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "batchsite.settings",
    }
    done = subprocess.run(
        [sys.executable, "-c", UPLOAD, str(path), url, transport], cwd=ROOT, env=env, capture_output=True, text=True
    )
    if done.returncode:
        raise SystemExit(done.stderr)
    before, after, seconds, size = done.stdout.split()
    return [
        transport,
        f"{int(size) / 2**20:.0f} MB",
        f"{before} MB",
        f"{after} MB",
        f"{int(after) - int(before)} MB",
        f"{seconds} s",
    ]


def main() -> None:
    os.environ.setdefault("DJANGO_SECRET_KEY", secrets.token_urlsafe(48))  # the fake is a manage.py child
    parser = argparse.ArgumentParser()
    parser.add_argument("--megabytes", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="upload-memory-") as folder, running_fake_dify("--no-size-limits") as fake:
        path = Path(folder) / "big.pdf"
        with path.open("wb") as f:
            block = os.urandom(1024 * 1024)
            for _ in range(args.megabytes):
                f.write(block)
        rows = [measure(path, fake.url, transport) for transport in ("aiohttp", "httpx")]
    header = ["transport", "uploaded", "peak before", "peak after", "added", "time"]
    for row in [header, *rows]:
        print("  ".join(f"{cell:<12}" for cell in row).rstrip())


if __name__ == "__main__":
    main()
