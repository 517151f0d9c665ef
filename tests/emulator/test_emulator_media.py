"""Outputs: real images of the documented sizes, determinism, reference colour, media host."""

from __future__ import annotations

import io
from urllib.parse import urlsplit

import httpx
import pytest
from PIL import Image

SIZES = {
    "square": (512, 512),
    "square_hd": (1024, 1024),
    "portrait_4_3": (768, 1024),
    "portrait_16_9": (576, 1024),
    "landscape_4_3": (1024, 768),
    "landscape_16_9": (1024, 576),
}


def _output(api, params: dict[str, object], prompt: str = "a harbour") -> bytes:
    task = api.create({"model": "qwen-image", "prompt": prompt, "params": params}).json()
    done = api.wait(task["id"])
    assert done["status"] == "succeeded"
    response = httpx.get(done["result"]["primary_url"])
    assert response.status_code == 200
    return response.content


@pytest.mark.parametrize(("image_size", "pixels"), SIZES.items())
def test_output_has_the_pixel_size_of_image_size(
    api, image_size: str, pixels: tuple[int, int]
) -> None:
    api.emulator.configure(latency=0)
    with Image.open(io.BytesIO(_output(api, {"image_size": image_size}))) as image:
        assert (image.format, image.size) == ("PNG", pixels)


def test_defaults_are_square_hd_png_and_jpeg_is_honoured(api) -> None:
    api.emulator.configure(latency=0)
    with Image.open(io.BytesIO(_output(api, {}))) as image:
        assert (image.format, image.size) == ("PNG", (1024, 1024))
    jpeg = _output(api, {"output_format": "jpeg", "image_size": "square"})
    with Image.open(io.BytesIO(jpeg)) as image:
        assert (image.format, image.size) == ("JPEG", (512, 512))


def test_same_request_same_bytes_other_prompt_other_bytes(api) -> None:
    api.emulator.configure(latency=0)
    params = {"image_size": "square"}
    first = _output(api, params, prompt="twin")
    assert _output(api, params, prompt="twin") == first
    assert _output(api, params, prompt="not a twin") != first


def test_result_urls_use_another_host_string_and_need_no_key(api) -> None:
    api.emulator.configure(latency=0)
    task = api.create().json()
    url = urlsplit(task["result"]["primary_url"])
    api_url = urlsplit(api.emulator.base_url)
    assert api_url.hostname == "127.0.0.1"
    assert url.hostname == "localhost"
    assert url.port == api_url.port
    assert f"{url.scheme}://{url.netloc}" == api.emulator.media_base_url
    assert "sig=" in url.query

    assert httpx.get(task["result"]["primary_url"]).status_code == 200
    leaked = httpx.get(task["result"]["primary_url"], headers={"Authorization": "Bearer x"})
    assert leaked.status_code == 200
    media = api.emulator.requests(path_prefix="/media/")
    assert [("authorization" in r["headers_present"]) for r in media] == [False, True]
    assert all(r["host"].startswith("localhost:") for r in media)
    assert all(r["key"] is None for r in media)


def test_polling_through_localhost_gives_127_0_0_1_media(api) -> None:
    api.emulator.configure(latency=0)
    task_id = api.create().json()["id"]
    via_localhost = api.emulator.base_url.replace("127.0.0.1", "localhost")
    task = httpx.get(
        f"{via_localhost}/api/v1/generations/{task_id}",
        headers={"Authorization": f"Bearer {api.emulator.api_key}"},
    ).json()
    assert urlsplit(task["result"]["primary_url"]).hostname == "127.0.0.1"


def test_reference_image_sets_the_frame_to_its_average_colour(api) -> None:
    api.emulator.configure(latency=0)
    from PIL import Image as PilImage

    half = PilImage.new("RGB", (20, 10), (200, 40, 0))
    half.paste((0, 40, 101), (10, 0, 20, 10))  # mean: (100, 40, 50.5) -> (100, 40, 51)
    buffer = io.BytesIO()
    half.save(buffer, format="PNG")
    uploaded = api.upload(buffer.getvalue()).json()
    reference = {"url": uploaded["url"], "kind": "image"}
    params = {"image_size": "square", "referenceMediaItems": [reference]}
    with Image.open(io.BytesIO(_output(api, params))) as image:
        rgb = image.convert("RGB")
        frame = 512 // 8
        for xy in [(0, 0), (511, 511), (frame - 1, 256), (256, 511 - frame + 1)]:
            assert rgb.getpixel(xy) == (100, 40, 51)
    with Image.open(io.BytesIO(_output(api, {"image_size": "square"}))) as plain:
        assert plain.convert("RGB").getpixel((0, 0)) != (100, 40, 51)


def test_media_urls_are_signed_and_appear_only_once_succeeded(api) -> None:
    api.emulator.configure(latency=0)
    url = api.create().json()["result"]["primary_url"]
    forged = url.split("?")[0] + "?sig=0000"
    api.assert_error(httpx.get(forged), 403, "forbidden")
    api.assert_error(httpx.get(url.split("?")[0]), 403, "forbidden")

    api.emulator.configure(latency=30)
    pending = api.create().json()["id"]
    early = f"{api.emulator.media_base_url}/media/generations/{pending}/0.png?sig=x"
    api.assert_error(httpx.get(early), 404, "not_found")
