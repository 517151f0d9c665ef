"""[hardening] Unbounded bodies cannot take a process down: a 300 MiB JSON answer and a gzip
bomb (1.5 GiB decoded) over real loopback HTTP are refused with RSS growth under 50 MiB.

Measured in a fresh interpreter (peak RSS, ``ru_maxrss``) so nothing else in the test session
moves the figure.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

PROBE = textwrap.dedent(
    """
    import json, resource, threading, zlib
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from rivya_provider.api.client import RivyaClient
    from rivya_provider.api.config import ClientConfig
    from rivya_provider.api.errors import RivyaError, DownloadTooLargeError

    deflater = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    zeros = bytes(1024 * 1024)
    BOMB = b"".join(deflater.compress(zeros) for _ in range(1536)) + deflater.flush()
    MIB = b" " * (1024 * 1024)

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            try:
                if self.path.endswith("big"):
                    self.send_header("Content-Length", str(300 * len(MIB)))
                    self.end_headers()
                    for _ in range(300):
                        self.wfile.write(MIB)
                else:
                    self.send_header("Content-Encoding", "gzip")
                    self.send_header("Content-Length", str(len(BOMB)))
                    self.end_headers()
                    self.wfile.write(BOMB)
            except (BrokenPipeError, ConnectionResetError):
                pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    config = ClientConfig(api_key="rvya_sk_x", base_url=base, max_attempts=1)

    class Discard:  # a sink that keeps nothing: the figure is the client's own memory
        def write(self, data):
            return len(data)

    def peak_mib():
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    codes = {}
    with RivyaClient(config) as client:
        baseline = peak_mib()
        for name in ("big", "bomb"):
            try:
                client.get_generation(name)
            except RivyaError as exc:
                codes[name] = exc.code
        try:
            client.download(f"{base}/media/bomb", Discard(), max_bytes=64 * 1024 * 1024)
        except DownloadTooLargeError as exc:
            codes["download"] = exc.code
    print(json.dumps({"growth_mib": peak_mib() - baseline, "codes": codes, "bomb": len(BOMB)}))
    """
)


def test_huge_and_bomb_answers_are_refused_with_little_memory() -> None:
    out = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, check=True, timeout=300
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["codes"] == {
        "big": "response_too_large",
        "bomb": "response_too_large",
        "download": "download_too_large",
    }
    assert result["bomb"] < 4 * 1024 * 1024  # a few MiB on the wire, 1.5 GiB decoded
    assert result["growth_mib"] < 50, result
