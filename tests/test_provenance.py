"""C2PA content credentials: every format read back with c2pa.Reader, with the signing chain's
root as the only trust anchor, so that "Trusted" means the signature checks out against the
certificate that made it (and a wrong anchor or a changed pixel shows). Small images; no
network (no time-stamp authority)."""

from __future__ import annotations

import asyncio
import base64
import datetime
import io
import logging
import stat
import sys
from pathlib import Path
from typing import Any

import c2pa  # the c2pa extra, which make test installs
import pytest
from cryptography import x509  # comes with c2pa-python
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from PIL import Image
from test_service import CONTEXT, FakeBackend

from pixelsmith import __version__
from pixelsmith.api.protocol import (
    CreateImageEditRequest,
    CreateImageRequest,
    CreateImageVariationRequest,
    ImagesResponse,
)
from pixelsmith.builders import build_content_credentials
from pixelsmith.imaging import MEDIA_TYPES, encode_animation, encode_image, trace_svg
from pixelsmith.moderation import Moderator
from pixelsmith.provenance import (
    ContentCredentials,
    GenerationFacts,
    ImageOrigin,
    SourceFile,
)
from pixelsmith.provenance.certificates import SigningCredentials
from pixelsmith.service import ImageService, ImageStream, InputImages
from pixelsmith.settings import Settings
from pixelsmith.storage import LocalImageStore

TRAINED = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
COMPOSITE = "http://cv.iptc.org/newscodes/digitalsourcetype/compositeWithTrainedAlgorithmicMedia"
FACTS = GenerationFacts(
    prompt="a secret lighthouse", negative_prompt="fog", seed=42, num_inference_steps=4,
    guidance_scale=1.5,
)  # fmt: skip


# --- certificates made here ----------------------------------------------------------------


def issue_chain(kind: str) -> tuple[bytes, bytes, bytes]:
    """PEM (chain, key, root) of a small CA and a leaf with C2PA's extensions: "es256",
    "ed25519", or "web-server" (an ES256 leaf for TLS servers, which C2PA refuses)."""
    now = datetime.datetime.now(datetime.timezone.utc)
    new_key = ed25519.Ed25519PrivateKey.generate if kind == "ed25519" else _p256
    digest = None if kind == "ed25519" else hashes.SHA256()
    root_key, leaf_key = new_key(), new_key()
    root_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"test root {kind}")])
    leaf_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"test signer {kind}")])
    purpose = ExtendedKeyUsageOID.SERVER_AUTH if kind == "web-server" else None

    def certificate(subject: x509.Name, key: Any) -> x509.CertificateBuilder:
        return (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(root_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        )

    root = (
        certificate(root_name, root_key)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_usage(signs_certificates=True), critical=True)
        .sign(root_key, digest)
    )
    leaf = (
        certificate(leaf_name, leaf_key)
        .add_extension(_usage(signs_certificates=False), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([purpose or ExtendedKeyUsageOID.EMAIL_PROTECTION]), False
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(root_key.public_key()), False
        )
        .sign(root_key, digest)
    )
    pem = serialization.Encoding.PEM
    chain = leaf.public_bytes(pem) + root.public_bytes(pem)
    key = leaf_key.private_bytes(
        pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return chain, key, root.public_bytes(pem)


def _p256() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _usage(*, signs_certificates: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not signs_certificates, content_commitment=False,
        key_encipherment=False, data_encipherment=False, key_agreement=False,
        key_cert_sign=signs_certificates, crl_sign=signs_certificates, encipher_only=False,
        decipher_only=False,
    )  # fmt: skip


# --- reading back --------------------------------------------------------------------------


class ReadBack:
    """What c2pa.Reader finds in a file, trusting `anchor` (a PEM root) alone."""

    def __init__(self, data: bytes, format: str, anchor: bytes) -> None:
        settings = {"trust": {"trust_anchors": anchor.decode()}, "verify": {"verify_trust": True}}
        context = c2pa.Context.from_dict(settings)
        with c2pa.Reader(MEDIA_TYPES[format], io.BytesIO(data), None, context) as reader:
            self.state: str = reader.get_validation_state()
            self.results: dict[str, Any] = reader.get_validation_results()
            self.manifest: dict[str, Any] = reader.get_active_manifest()

    @property
    def failures(self) -> list[str]:
        return [status["code"] for status in self.results["activeManifest"]["failure"]]

    def assertion(self, label: str) -> dict[str, Any] | None:
        found = [a["data"] for a in self.manifest["assertions"] if a["label"] == label]
        return found[0] if found else None

    @property
    def actions(self) -> list[dict[str, Any]]:
        actions = self.assertion("c2pa.actions.v2") or self.assertion("c2pa.actions")
        assert actions is not None, self.manifest["assertions"]
        return list(actions["actions"])


def local_settings(storage: Path, **overrides: Any) -> Settings:
    return Settings(cache_dir=storage, storage_dir=storage, **overrides)


def authority_of(storage: Path) -> bytes:
    return (storage / ".c2pa" / "authority.pem").read_bytes()


@pytest.fixture(scope="module")
def storage(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("c2pa-storage")


@pytest.fixture(scope="module")
def credentials(storage: Path) -> ContentCredentials:
    """Signing with the local authority the settings make by default."""
    built = build_content_credentials(local_settings(storage))
    assert built is not None
    return built


def picture() -> Image.Image:
    return Image.effect_mandelbrot((64, 64), (-2.0, -1.5, 1.0, 1.5), 40).convert("RGB")


def encoded(format: str) -> bytes:
    image = picture()
    if format == "gif":
        return encode_animation([image, image.rotate(90), image.rotate(180)], 100)
    if format == "svg":
        pytest.importorskip("vtracer")
        return trace_svg(image, "low")
    return encode_image(image, format, 90)  # type: ignore[arg-type]


def tampered(signed: bytes, original: bytes) -> bytes:
    """`signed` with a few bytes of the image itself (its pixel data, a path of an SVG)
    changed: the end of each format's own data, which signing leaves as it was."""
    where = signed.index(original[-40:-20]) + 4
    changed = bytearray(signed)
    changed[where : where + 4] = bytes(value ^ 0x5A for value in changed[where : where + 4])
    return bytes(changed)


# --- what a manifest says ------------------------------------------------------------------


@pytest.mark.parametrize("format", ["png", "jpeg", "webp", "gif", "svg"])
def test_every_format_carries_a_trusted_manifest_of_its_generation(
    format: str, credentials: ContentCredentials, storage: Path
):
    original = encoded(format)
    signed = credentials.sign(original, format, ImageOrigin(model="tiny-sd"))  # type: ignore[arg-type]
    found = ReadBack(signed, format, authority_of(storage))
    assert found.state == "Trusted", found.results
    (action,) = found.actions
    assert action["action"] == "c2pa.created"
    assert action["digitalSourceType"] == TRAINED
    assert action["softwareAgent"] == {"name": "pixelsmith", "version": __version__}
    assert action["parameters"]["model"] == "tiny-sd"
    assert found.manifest["claim_generator_info"][0]["name"] == "pixelsmith"
    assert found.manifest["signature_info"]["alg"] == "Es256"
    assert found.assertion("pixelsmith.generation") is None  # off unless asked for
    if format != "svg":  # still the same picture, for any decoder
        again = Image.open(io.BytesIO(signed))
        assert again.size == (64, 64) and getattr(again, "n_frames", 1) == (
            3 if format == "gif" else 1
        )
    if format == "png":
        assert Image.open(io.BytesIO(signed)).tobytes() == picture().tobytes()

    # The checks are real: a root that did not issue the certificate does not make it trusted,
    # and a changed pixel breaks the hash that binds the manifest to the file.
    stranger = ReadBack(signed, format, issue_chain("es256")[2])
    assert stranger.state != "Trusted" and "signingCredential.untrusted" in stranger.failures
    broken = ReadBack(tampered(signed, original), format, authority_of(storage))
    assert broken.state == "Invalid"
    assert any("mismatch" in code for code in broken.failures), broken.failures


def test_an_edit_is_recorded_as_one_with_its_input_as_ingredient(
    credentials: ContentCredentials, storage: Path
):
    # The input carries credentials of its own (an earlier pixelsmith image): they are kept.
    earlier = credentials.sign(encoded("png"), "png", ImageOrigin(model="tiny-sd"))
    reference = encoded("jpeg")
    origin = ImageOrigin(
        model="tiny-sd",
        inputs=(SourceFile(earlier, "png"), SourceFile(reference, "jpeg")),
        inpainted=True,
    )
    signed = credentials.sign(encoded("webp"), "webp", origin)
    found = ReadBack(signed, "webp", authority_of(storage))
    assert found.state == "Trusted", found.results
    opened, edited = found.actions  # C2PA opens an edit on its parent, then says what changed
    assert opened["action"] == "c2pa.opened"
    assert edited["action"] == "c2pa.edited" and edited["digitalSourceType"] == COMPOSITE
    assert edited["softwareAgent"]["version"] == __version__
    assert edited["parameters"]["model"] == "tiny-sd"
    parent, image_prompt = found.manifest["ingredients"]
    assert (parent["relationship"], parent["format"]) == ("parentOf", "image/png")
    assert parent["active_manifest"]  # the input's own manifest, inside this one
    assert (image_prompt["relationship"], image_prompt["format"]) == ("inputTo", "image/jpeg")
    assert "thumbnail" not in parent  # the user's input is not copied into every output

    # An input whose own credentials cannot even be parsed is recorded without them.
    chunk = earlier.index(b"caBX") + 200
    garbled = earlier[:chunk] + bytes(50) + earlier[chunk + 50 :]
    origin = ImageOrigin(model="tiny-sd", inputs=(SourceFile(garbled, "png"),))
    found = ReadBack(credentials.sign(encoded("png"), "png", origin), "png", authority_of(storage))
    assert found.state == "Trusted" and found.actions[1]["action"] == "c2pa.edited"
    (parent,) = found.manifest["ingredients"]
    assert parent["relationship"] == "parentOf" and "active_manifest" not in parent


def test_generation_facts_are_recorded_only_when_turned_on(
    credentials: ContentCredentials, storage: Path
):
    original = encoded("png")
    origin = ImageOrigin(model="tiny-sd", generation=FACTS)
    unrecorded = credentials.sign(original, "png", origin)
    found = ReadBack(unrecorded, "png", authority_of(storage))
    assert found.state == "Trusted" and found.assertion("pixelsmith.generation") is None
    assert b"lighthouse" not in unrecorded

    recording = ContentCredentials(credentials.credentials, generation_metadata=True)
    found = ReadBack(recording.sign(original, "png", origin), "png", authority_of(storage))
    assert found.state == "Trusted"
    assert found.assertion("pixelsmith.generation") == {
        "prompt": "a secret lighthouse",
        "negative_prompt": "fog",
        "seed": 42,
        "num_inference_steps": 4,
        "guidance_scale": 1.5,
    }


# --- what signs ----------------------------------------------------------------------------


@pytest.mark.parametrize("kind, alg", [("es256", "Es256"), ("ed25519", "Ed25519")])
def test_a_configured_certificate_and_key_sign_instead_of_the_local_authority(
    kind: str, alg: str, tmp_path: Path
):
    chain, key, root = issue_chain(kind)
    (tmp_path / "chain.pem").write_bytes(chain)
    (tmp_path / "key.pem").write_bytes(key)
    settings = local_settings(
        tmp_path / "images",
        c2pa_certificate_file=tmp_path / "chain.pem",
        c2pa_private_key_file=tmp_path / "key.pem",
    )
    configured = build_content_credentials(settings)
    assert configured is not None and configured.credentials.algorithm == kind
    found = ReadBack(configured.sign(encoded("jpeg"), "jpeg", ImageOrigin("m")), "jpeg", root)
    assert found.state == "Trusted", found.results
    assert found.manifest["signature_info"]["alg"] == alg
    assert found.manifest["signature_info"]["common_name"] == f"test signer {kind}"
    assert not (tmp_path / "images" / ".c2pa").exists()  # no local authority made


def test_an_unusable_certificate_or_key_stops_the_server_naming_the_setting(tmp_path: Path):
    chain, key, _ = issue_chain("es256")
    _, other_key, _ = issue_chain("es256")
    web_server, web_server_key, _ = issue_chain("web-server")

    def build(certificate: bytes, private_key: bytes) -> None:
        (tmp_path / "chain.pem").write_bytes(certificate)
        (tmp_path / "key.pem").write_bytes(private_key)
        build_content_credentials(
            local_settings(
                tmp_path,
                c2pa_certificate_file=tmp_path / "chain.pem",
                c2pa_private_key_file=tmp_path / "key.pem",
            )
        )

    with pytest.raises(ValueError, match="c2pa_private_key_file .* not an unencrypted PEM"):
        build(chain, b"not a key")
    with pytest.raises(ValueError, match="c2pa_certificate_file .* holds no PEM certificate"):
        build(b"not a certificate", key)
    with pytest.raises(ValueError, match="c2pa_certificate_file .* is not the one of the key"):
        build(chain, other_key)
    with pytest.raises(ValueError, match="c2pa_certificate_file .* refuses to sign with it"):
        build(web_server, web_server_key)
    fine = configured_credentials_of(chain, key)
    with pytest.raises(ValueError, match="c2pa_timestamp_url http://127.0.0.1:9/ts"):
        ContentCredentials(fine, timestamp_url="http://127.0.0.1:9/ts")  # nothing answers there


def configured_credentials_of(chain: bytes, key: bytes) -> SigningCredentials:
    return SigningCredentials(chain, key, "es256", "test chain")


def test_the_local_authority_is_made_once_and_kept_private(tmp_path: Path):
    first = build_content_credentials(local_settings(tmp_path))
    second = build_content_credentials(local_settings(tmp_path))
    assert first is not None and second is not None
    assert first.credentials == second.credentials  # read back, not made again
    directory = tmp_path / ".c2pa"
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    names = sorted(path.name for path in directory.iterdir())
    assert names == ["authority.pem", "signing-certificate.pem", "signing-key.pem"]
    for path in directory.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    # The leaf is issued by the root, and only the root is what a validator is told to trust.
    chain = (directory / "signing-certificate.pem").read_bytes()
    leaf, root = x509.load_pem_x509_certificates(chain)
    assert leaf.issuer == root.subject != leaf.subject
    assert root.public_bytes(serialization.Encoding.PEM) == authority_of(tmp_path)


def test_credentials_are_off_when_disabled_or_when_c2pa_is_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
):
    assert build_content_credentials(local_settings(tmp_path, c2pa_enabled=False)) is None
    assert not (tmp_path / ".c2pa").exists()
    monkeypatch.setitem(sys.modules, "c2pa", None)  # import c2pa raises ImportError
    with caplog.at_level(logging.WARNING):
        assert build_content_credentials(local_settings(tmp_path)) is None
    assert "pip install 'pixelsmith[c2pa]'" in caplog.text


def test_signing_from_several_threads_at_once(credentials: ContentCredentials, storage: Path):
    original = encoded("jpeg")

    async def sign_all() -> list[bytes]:
        origins = [ImageOrigin(model=f"m{index}") for index in range(16)]
        return await asyncio.gather(
            *(asyncio.to_thread(credentials.sign, original, "jpeg", o) for o in origins)
        )

    for index, signed in enumerate(asyncio.run(sign_all())):
        found = ReadBack(signed, "jpeg", authority_of(storage))
        assert found.state == "Trusted"
        assert found.actions[0]["parameters"]["model"] == f"m{index}"


def test_signing_credentials_keep_the_key_out_of_their_repr():
    chain, key, _ = issue_chain("es256")
    assert "PRIVATE" not in repr(SigningCredentials(chain, key, "es256", "test"))


# --- through the service -------------------------------------------------------------------


def signing_service(tmp_path: Path, credentials: ContentCredentials) -> ImageService:
    store = LocalImageStore(tmp_path, ttl_seconds=60, signing_key=b"k" * 32)
    return ImageService(FakeBackend(), store, Moderator(), credentials=credentials)


def image_bytes(b64_json: str | None) -> bytes:
    assert b64_json is not None
    return base64.b64decode(b64_json)


def test_the_service_signs_generated_streamed_and_edited_images(
    tmp_path: Path, credentials: ContentCredentials, storage: Path
):
    service = signing_service(tmp_path, credentials)
    anchor = authority_of(storage)
    model = FakeBackend().registry.default.id

    request = CreateImageRequest(prompt="a cat", size="64x64", seed=3, output_format="jpeg")
    response = asyncio.run(service.generate(request, CONTEXT))
    assert isinstance(response, ImagesResponse)
    found = ReadBack(image_bytes(response.data[0].b64_json), "jpeg", anchor)
    assert found.state == "Trusted"
    (action,) = found.actions
    assert (action["action"], action["digitalSourceType"]) == ("c2pa.created", TRAINED)
    assert action["parameters"]["model"] == model

    async def streamed() -> list[dict[str, Any]]:
        request = CreateImageRequest(prompt="a cat", size="64x64", stream=True, partial_images=1)
        stream = await service.generate(request, CONTEXT)
        assert isinstance(stream, ImageStream)
        return [event async for event in stream]

    partial, completed = asyncio.run(streamed())
    for event in (partial, completed):  # previews are signed as outputs are
        assert ReadBack(image_bytes(event["b64_json"]), "png", anchor).state == "Trusted"

    source = encode_image(picture(), "png")
    edit = CreateImageEditRequest(prompt="a red roof", size="64x64")
    response = asyncio.run(service.edit(edit, InputImages([source]), CONTEXT))
    assert isinstance(response, ImagesResponse)
    found = ReadBack(image_bytes(response.data[0].b64_json), "png", anchor)
    assert found.state == "Trusted"
    assert [action["action"] for action in found.actions] == ["c2pa.opened", "c2pa.edited"]
    assert found.actions[1]["digitalSourceType"] == TRAINED  # image-to-image: all redrawn
    (ingredient,) = found.manifest["ingredients"]
    assert ingredient["relationship"] == "parentOf"

    variation = CreateImageVariationRequest(size="256x256", response_format="b64_json")
    image = encode_image(Image.new("RGB", (64, 64), (200, 10, 10)), "png")
    response = asyncio.run(service.create_variation(variation, image, CONTEXT))
    found = ReadBack(image_bytes(response.data[0].b64_json), "png", anchor)
    assert found.state == "Trusted" and found.actions[-1]["action"] == "c2pa.edited"


def test_images_from_the_running_server_carry_trusted_credentials(cache_dir: Path, tmp_path: Path):
    """Through the official client over HTTP: base64 and URL answers, generations and edits,
    signed by the server's local authority."""
    import openai
    from conftest import RunningServer, make_settings

    from pixelsmith.app import create_app

    settings = make_settings(cache_dir, tmp_path, moderation_prompt_classifier="off")
    with (
        RunningServer(create_app(settings)) as running,
        openai.OpenAI(base_url=f"{running.base_url}/v1", api_key="x", max_retries=0) as client,
    ):
        check_the_servers_images(client, authority_of(tmp_path))


def check_the_servers_images(client: Any, anchor: bytes) -> None:
    import httpx

    made = client.images.generate(
        prompt="a lighthouse", size="64x64", output_format="webp", extra_body={"seed": 5}
    )
    generated = ReadBack(base64.b64decode(made.data[0].b64_json or ""), "webp", anchor)
    assert generated.state == "Trusted", generated.results
    assert [action["action"] for action in generated.actions] == ["c2pa.created"]
    assert generated.actions[0]["parameters"]["model"] == "tiny"

    source = base64.b64decode(made.data[0].b64_json or "")
    edit = client.images.edit(image=("in.webp", source), prompt="a red roof", size="64x64")
    edited = ReadBack(base64.b64decode(edit.data[0].b64_json or ""), "png", anchor)
    assert edited.state == "Trusted", edited.results
    assert "c2pa.edited" in [action["action"] for action in edited.actions]
    # The input was pixelsmith's own image: its credentials travel inside the edit's.
    assert len(edited.manifest["ingredients"]) == 1

    by_url = client.images.generate(model="dall-e-2", prompt="a lighthouse", size="256x256")
    fetched = httpx.get(by_url.data[0].url or "").content
    assert ReadBack(fetched, "png", anchor).state == "Trusted"
