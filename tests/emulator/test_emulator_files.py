"""Files API: multipart upload, MIME from bytes, size limits, model rules, ownership."""

from __future__ import annotations

import httpx
import pytest

from rivya_provider.emulator._catalogue import MB
from rivya_provider.emulator._mime import sniff_mime

PNG_HEAD = b"\x89PNG\r\n\x1a\n"
MP4_HEAD = b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2"


def test_upload_returns_the_documented_shape_and_serves_the_bytes(api) -> None:
    data = api.png((10, 20, 30))
    response = api.upload(data, filename="photo.png", client_request_id="trace-1")
    assert response.status_code == 201
    body = response.json()
    assert set(body) == {
        "id",
        "url",
        "kind",
        "name",
        "mime_type",
        "size_bytes",
        "duration_token",
        "created_at",
    }
    assert body["id"].startswith("file_")
    assert (body["kind"], body["name"], body["mime_type"]) == ("image", "photo.png", "image/png")
    assert body["size_bytes"] == len(data)
    assert body["duration_token"] is None
    assert body["url"].startswith(api.emulator.media_base_url + "/")
    assert httpx.get(body["url"]).content == data

    metadata = api.http.get(f"/api/v1/files/{body['id']}")
    assert metadata.status_code == 200
    assert metadata.json() == body


def test_mime_comes_from_the_bytes_not_the_name_or_declared_type(api) -> None:
    body = api.upload(api.png((1, 2, 3)), filename="fake.jpg", content_type="image/jpeg").json()
    assert body["mime_type"] == "image/png"
    text = api.upload(
        b"just some text, not an image", filename="looks.png", content_type="image/png"
    )
    api.assert_error(text, 400, "validation_failed")


def test_kind_must_match_the_detected_type(api) -> None:
    api.assert_error(api.upload(MP4_HEAD + b"\x00" * 64, kind="image"), 400, "validation_failed")
    video = api.upload(MP4_HEAD + b"\x00" * 64, kind="video", filename="clip.mp4")
    assert video.status_code == 201
    assert video.json()["mime_type"] == "video/mp4"
    assert video.json()["duration_token"]
    api.assert_error(api.upload(api.png((0, 0, 0)), kind="document"), 400, "validation_failed")


def test_image_size_limit_is_10_mib(api) -> None:
    exactly = PNG_HEAD + b"\x00" * (10 * MB - len(PNG_HEAD))
    assert api.upload(exactly).status_code == 201
    api.assert_error(api.upload(exactly + b"\x00"), 400, "validation_failed")


def test_model_rules_apply_when_a_model_is_given(api) -> None:
    clip = MP4_HEAD + b"\x00" * 64
    api.assert_error(api.upload(clip, kind="video", model="qwen-image"), 400, "validation_failed")
    api.assert_error(api.upload(api.png((0, 0, 0)), model="no-such"), 400, "validation_failed")
    assert api.upload(api.png((0, 0, 0)), model="qwen-image").status_code == 201


def test_form_fields_are_checked(api) -> None:
    long_id = api.upload(api.png((0, 0, 0)), client_request_id="c" * 129)
    api.assert_error(long_id, 400, "validation_failed")
    no_file = api.http.post("/api/v1/files", data={"kind": "image"}, files={"other": b"x"})
    api.assert_error(no_file, 400, "validation_failed")
    no_kind = api.http.post("/api/v1/files", files={"file": ("a.png", api.png((0, 0, 0)))})
    api.assert_error(no_kind, 400, "validation_failed")
    not_multipart = api.http.post("/api/v1/files", json={"kind": "image"})
    api.assert_error(not_multipart, 400, "validation_failed")


def test_files_belong_to_their_key(api) -> None:
    file_id = api.upload(api.png((0, 0, 0))).json()["id"]
    api.emulator.add_key("rvya_sk_other")
    foreign = api.http.get(
        f"/api/v1/files/{file_id}", headers={"Authorization": "Bearer rvya_sk_other"}
    )
    api.assert_error(foreign, 404, "not_found")
    api.assert_error(api.http.get("/api/v1/files/file_nope"), 404, "not_found")


def test_a_video_file_cannot_be_a_qwen_reference(api) -> None:
    clip = api.upload(MP4_HEAD + b"\x00" * 64, kind="video").json()
    body = {
        "model": "qwen-image",
        "prompt": "p",
        "params": {"referenceMediaItems": [{"url": clip["url"], "kind": "image"}]},
    }
    api.assert_error(api.create(body), 400, "validation_failed")


@pytest.mark.parametrize(
    ("head", "kind", "mime"),
    [
        (b"\xff\xd8\xff\xe0\x00\x10JFIF", None, "image/jpeg"),
        (PNG_HEAD, None, "image/png"),
        (b"RIFF\x00\x00\x00\x00WEBPVP8 ", None, "image/webp"),
        (b"\x00\x00\x00\x14ftypqt  ", None, "video/quicktime"),
        (MP4_HEAD, None, "video/mp4"),
        (MP4_HEAD, "audio", "audio/mp4"),
        (b"\x00\x00\x00\x20ftypM4A ", None, "audio/mp4"),
        (b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81", None, "video/webm"),
        (b"RIFF\x00\x00\x00\x00WAVEfmt ", None, "audio/wav"),
        (b"ID3\x04\x00\x00\x00", None, "audio/mpeg"),
        (b"\xff\xfb\x90\x64", None, "audio/mpeg"),
        (b"\xff\xf1\x50\x80", None, "audio/aac"),
        (b"OggS\x00\x02", None, "audio/ogg"),
        (b"GIF89a", None, None),
        (b"", None, None),
    ],
)
def test_signature_detection(head: bytes, kind: str | None, mime: str | None) -> None:
    assert sniff_mime(head, kind=kind) == mime
