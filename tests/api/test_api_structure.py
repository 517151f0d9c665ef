"""Layering and structure: Airflow-free, one public face, no duplicated client logic."""

from __future__ import annotations

import ast
import asyncio
import inspect
import pkgutil
import subprocess
import sys
import textwrap
import threading

import httpx
import respx
from rivya_api_support import API_KEY, BASE_URL

import rivya_provider.api
from rivya_provider.api import pool
from rivya_provider.api.client import AsyncRivyaClient, RivyaClient
from rivya_provider.api.config import ClientConfig
from rivya_provider.api.pool import shared_async_http_client


def _imported_top_levels(code: str) -> set[str]:
    probe = code + "\nimport sys\nprint(','.join(sorted({m.split('.')[0] for m in sys.modules})))"
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    return set(out.stdout.strip().split(","))


def test_api_never_imports_airflow() -> None:
    modules = [
        f"rivya_provider.api.{info.name}"
        for info in pkgutil.iter_modules(rivya_provider.api.__path__)
    ]
    assert "rivya_provider.api._core" in modules
    loaded = _imported_top_levels("\n".join(f"import {name}" for name in modules))
    assert "httpx" in loaded  # the probe does see imports
    assert "airflow" not in loaded


def test_the_package_is_one_face_with_each_name_once() -> None:
    names = rivya_provider.api.__all__
    assert len(names) == len(set(names))  # no name exported by two modules
    for name in names:
        assert getattr(rivya_provider.api, name) is not None, name
    assert rivya_provider.api.RivyaClient is RivyaClient
    assert rivya_provider.api.submit_once is not None
    assert not [name for name in names if name.startswith("_")]


def test_no_client_module_re_exports_another_modules_names() -> None:
    # One facade only: a module's __all__ lists what it defines (or, for client.py, the
    # BinaryWriter protocol of its own signatures), never another module's public names.
    from rivya_provider.api import client, config, models, polling

    assert set(client.__all__) == {"AsyncRivyaClient", "RivyaClient", "BinaryWriter"}
    for module in (config, models, polling):
        for name in module.__all__:
            value = getattr(module, name)
            home = getattr(value, "__module__", module.__name__)
            assert home in (module.__name__, "typing"), (module.__name__, name, home)


def _public_methods(cls: type) -> dict[str, ast.FunctionDef | ast.AsyncFunctionDef]:
    tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    klass = tree.body[0]
    assert isinstance(klass, ast.ClassDef)
    return {
        node.name: node
        for node in klass.body
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
        and not node.name.startswith("_")
        and node.name not in ("close", "aclose")
    }


def test_client_methods_only_delegate_to_the_shared_core() -> None:
    sync_methods = _public_methods(RivyaClient)
    async_methods = _public_methods(AsyncRivyaClient)
    assert set(sync_methods) == set(async_methods)
    assert set(sync_methods) >= {
        "list_models",
        "create_generation",
        "get_generation",
        "wait_for_generation",
        "upload_file",
        "get_file",
        "get_credits",
        "download",
    }
    for name, node in {
        **sync_methods,
        **{f"async {k}": v for k, v in async_methods.items()},
    }.items():
        statements = [s for s in node.body if not isinstance(s, ast.Expr)]  # skip docstring
        assert len(statements) == 1, name
        call_source = ast.unparse(statements[0])
        method = name.removeprefix("async ")
        assert f"self._run(self._core.{method}(" in call_source, name


def _closed(http: httpx.AsyncClient) -> bool:
    return http.is_closed


def test_shared_pool_is_per_loop_and_reference_counted() -> None:
    async def scenario() -> None:
        async with shared_async_http_client() as first:
            async with shared_async_http_client() as second:
                assert first is second
                assert pool.pool_users() == 2
            assert not _closed(first)
            assert pool.pool_users() == 1
        assert _closed(first)
        assert pool.pool_users() == 0
        async with shared_async_http_client() as fresh:
            assert fresh is not first

    asyncio.run(scenario())


def test_pools_are_never_shared_across_loops() -> None:
    seen: list[httpx.AsyncClient] = []
    both_inside = threading.Barrier(2, timeout=10)

    def worker() -> None:
        async def hold() -> None:
            async with shared_async_http_client() as http:
                seen.append(http)
                await asyncio.to_thread(both_inside.wait)

        asyncio.run(hold())

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert len(seen) == 2
    assert seen[0] is not seen[1]


def test_many_async_clients_share_one_pool() -> None:
    config = ClientConfig(api_key=API_KEY, base_url=BASE_URL)
    pools: list[httpx.AsyncClient] = []

    async def one_trigger(all_inside: asyncio.Event) -> int:
        async with shared_async_http_client() as http:
            pools.append(http)
            if len(pools) == 20:
                all_inside.set()
            await all_inside.wait()  # triggers overlap, as in a triggerer
            rivya = AsyncRivyaClient(config, http_client=http)
            credits = await rivya.get_credits()
            await rivya.aclose()  # must not close the shared pool
            assert not http.is_closed
            return credits.current_credits

    async def scenario() -> list[int]:
        all_inside = asyncio.Event()
        return await asyncio.gather(*(one_trigger(all_inside) for _ in range(20)))

    with respx.mock(base_url=BASE_URL) as router:
        router.get("/api/v1/credits").respond(200, json={"current_credits": 1000})
        assert asyncio.run(scenario()) == [1000] * 20
    assert len({id(http) for http in pools}) == 1
    assert _closed(pools[0])
