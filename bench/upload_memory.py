"""Peak memory of uploading a ~10 MB image with RivyaFileUploadOperator's client path.

Run: ``.venv/bin/python bench/upload_memory.py``

Each measurement runs in a fresh interpreter against the emulator (a separate process): imports
and a small warm-up upload come first, then ``ru_maxrss`` (the peak) is read before and after
the big upload. The figure is the peak RSS added, as a fraction of the file size. For scale, the
same run measures a baseline that reads the file whole and posts it with httpx. Target for the
streamed upload: <= 0.25. Prints figures; asserts nothing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

_MEASURE = textwrap.dedent(
    """
    import json, resource, sys
    import httpx
    from rivya_provider.api import ClientConfig, RivyaClient

    mode, base_url, api_key, big, small = sys.argv[1:6]
    config = ClientConfig(base_url=base_url, api_key=api_key)

    def upload(path):
        if mode == "streamed":
            with RivyaClient(config) as client:
                client.upload_file(path, kind="image", model="qwen-image")
        else:  # baseline: the whole file in memory, posted as one body
            data = open(path, "rb").read()
            httpx.post(
                base_url + "/api/v1/files",
                headers={"Authorization": "Bearer " + api_key},
                data={"kind": "image"},
                files={"file": ("big.png", data, "image/png")},
                timeout=60,
            ).raise_for_status()

    upload(small)  # warm-up: imports, connection, multipart machinery
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    upload(big)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"added_kib": after - before}))
    """
)


def _make_images(folder: Path) -> tuple[Path, Path]:
    """A real ~9.8 MB PNG of noise (under the 10 MiB limit) and a tiny one, in a subprocess."""
    big, small = folder / "big.png", folder / "small.png"
    script = textwrap.dedent(
        f"""
        import os
        from PIL import Image
        side = 1800
        Image.frombytes("RGB", (side, side), os.urandom(side * side * 3)).save({str(big)!r})
        Image.new("RGB", (8, 8), (1, 2, 3)).save({str(small)!r})
        """
    )
    subprocess.run([sys.executable, "-c", script], check=True)
    return big, small


def _measure(mode: str, base_url: str, api_key: str, big: Path, small: Path) -> int:
    out = subprocess.run(
        [sys.executable, "-c", _MEASURE, mode, base_url, api_key, str(big), str(small)],
        check=True,
        capture_output=True,
        text=True,
        timeout=300,
    )
    return int(json.loads(out.stdout.strip().splitlines()[-1])["added_kib"])


def main() -> None:
    from rivya_provider.testing.emulator_process import run_emulator

    with tempfile.TemporaryDirectory() as tmp, run_emulator(latency=0.1) as emulator:
        big, small = _make_images(Path(tmp))
        size = os.path.getsize(big)
        streamed = _measure("streamed", emulator.base_url, emulator.api_key, big, small)
        baseline = _measure("whole-file", emulator.base_url, emulator.api_key, big, small)
    size_kib = size / 1024
    print(f"file size:                       {size / 1e6:.2f} MB")
    print(
        f"streamed upload, peak RSS added: {streamed / 1024:.2f} MiB"
        f" = {streamed / size_kib:.3f} x file size (target <= 0.25)"
    )
    print(
        f"baseline (read whole + post):    {baseline / 1024:.2f} MiB"
        f" = {baseline / size_kib:.3f} x file size"
    )
    if baseline > 0:
        print(f"streamed / baseline:             {streamed / baseline:.3f}")


if __name__ == "__main__":
    main()
