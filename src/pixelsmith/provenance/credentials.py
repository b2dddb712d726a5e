"""C2PA content credentials: a signed manifest in every image that says it was made by a
trained model (IPTC's trainedAlgorithmicMedia), by which software and which model, from which
inputs when it is an edit, and, where the operator turns it on, with which seed, steps,
guidance and prompt.

A manifest is embedded in the file (PNG, JPEG, WebP, GIF and SVG alike: c2pa-python signs
image/svg+xml too, in a <metadata> element) and binds itself to the file's bytes by a hash, so
that any change to the pixels shows as a failed validation. Nothing here runs on the event
loop: signing is CPU work and file rewriting (milliseconds; docs/provenance.md has the
figures), called from the threads that encode.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from PIL import Image

from pixelsmith import __version__
from pixelsmith.imaging import MEDIA_TYPES, OutputFormat, encode_image

if TYPE_CHECKING:  # certificates needs cryptography, which comes with the c2pa extra
    from pixelsmith.provenance.certificates import SigningCredentials

logger = logging.getLogger(__name__)

DIGITAL_SOURCE_TYPES = "http://cv.iptc.org/newscodes/digitalsourcetype/"
# Made by a model from a prompt (and, for image-to-image and variations, an input it redraws).
TRAINED_ALGORITHMIC_MEDIA = DIGITAL_SOURCE_TYPES + "trainedAlgorithmicMedia"
# Inpainting: the input's own pixels outside the mask, the model's inside it.
COMPOSITE_WITH_TRAINED_ALGORITHMIC_MEDIA = (
    DIGITAL_SOURCE_TYPES + "compositeWithTrainedAlgorithmicMedia"
)
# The assertion of generation facts (c2pa_generation_metadata). C2PA reserves the "c2pa."
# prefix; other assertions carry their maker's name.
GENERATION_ASSERTION = "pixelsmith.generation"
SOFTWARE_AGENT = {"name": "pixelsmith", "version": __version__}
# The C2PA library's settings for every signature. No thumbnail: the library would embed a
# JPEG of each output (130 kB to 1.6 MB at 1024x1024, 35-75 ms) and of each edit's inputs
# (the user's own image, in every output made from it), for nothing a viewer lacks.
SIGNING_SETTINGS = {"builder": {"thumbnail": {"enabled": False}}}


@dataclass(frozen=True)
class SourceFile:
    """An input image as the client sent it: an ingredient of the images made from it. A
    file that carries content credentials of its own keeps them, inside the new manifest."""

    data: bytes = field(repr=False)  # up to 50 MB: kept out of plans' reprs and logs
    format: str  # png, jpeg or webp


@dataclass(frozen=True)
class GenerationFacts:
    """What reproduces an image, under the request parameters' names. Recorded only where the
    operator turns c2pa_generation_metadata on: a prompt can be private."""

    prompt: str
    negative_prompt: str | None
    seed: int | None  # None for previews the engine sends without their seeds
    num_inference_steps: int
    guidance_scale: float


@dataclass(frozen=True)
class ImageOrigin:
    """How one image was made, as its manifest records it."""

    model: str  # the serving model's id
    # An edit's or a variation's input files, the edited one first (then reference images):
    # with any, the image is recorded as an edit of the first.
    inputs: tuple[SourceFile, ...] = ()
    inpainted: bool = False  # outside the mask, the first input's own pixels
    generation: GenerationFacts | None = None

    @property
    def edited(self) -> bool:
        return bool(self.inputs)


class ContentCredentials:
    """Signs images with C2PA manifests. Safe to call from several threads at once: the C2PA
    context (settings only) is shared, and each signature has its own builder and signer."""

    def __init__(
        self,
        credentials: SigningCredentials,
        *,
        timestamp_url: str | None = None,
        generation_metadata: bool = False,
    ) -> None:
        """Checks the credentials (and the time-stamp authority) with one signature now,
        ValueError naming the setting if it fails, so that a server never starts without
        them. With `timestamp_url`, every signature waits for that time-stamp authority."""
        import c2pa

        self._c2pa = c2pa
        self.credentials = credentials
        self.timestamp_url = timestamp_url
        self.generation_metadata = generation_metadata
        self._context = c2pa.Context.from_dict(SIGNING_SETTINGS)
        probe, origin = encode_image(Image.new("RGB", (8, 8)), "png"), ImageOrigin("startup")
        try:
            self._sign(probe, "png", origin, None)
        except c2pa.C2paError as exc:
            raise ValueError(
                f"{credentials.described}: the C2PA library refuses to sign with it ({exc}). "
                "C2PA asks for a signing certificate issued by a CA, with an authority key "
                "identifier, a critical key usage of digitalSignature and an extended key usage "
                "such as emailProtection or documentSigning (a TLS server certificate will not "
                "do); see docs/provenance.md."
            ) from None
        if timestamp_url is not None:
            try:
                self._sign(probe, "png", origin, timestamp_url)
            except c2pa.C2paError as exc:
                raise ValueError(
                    f"c2pa_timestamp_url {timestamp_url}: no time stamp from it ({exc})"
                ) from None

    def sign(self, data: bytes, format: OutputFormat, origin: ImageOrigin) -> bytes:
        """`data` (an encoded image in `format`) with a signed manifest for `origin` embedded.
        c2pa.C2paError if it cannot be signed, a time-stamp authority that does not answer
        included: the image is not returned without the credentials the operator asked for."""
        return self._sign(data, format, origin, self.timestamp_url)

    def _sign(
        self, data: bytes, format: OutputFormat, origin: ImageOrigin, timestamp_url: str | None
    ) -> bytes:
        try:
            return self._signed(data, format, origin, timestamp_url, read_inputs=True)
        except _UnreadableInput as exc:
            # A client can send an input with credentials of its own that the library cannot
            # parse: its inputs are then recorded by title, format and role only.
            logger.info("an input's content credentials cannot be read (%s)", exc)
            return self._signed(data, format, origin, timestamp_url, read_inputs=False)

    def _signed(
        self,
        data: bytes,
        format: OutputFormat,
        origin: ImageOrigin,
        timestamp_url: str | None,
        *,
        read_inputs: bool,
    ) -> bytes:
        c2pa = self._c2pa
        manifest = self._manifest(format, origin)
        if origin.edited and not read_inputs:
            manifest["ingredients"] = [_ingredient(i, s) for i, s in enumerate(origin.inputs)]
        info = c2pa.C2paSignerInfo(
            self.credentials.algorithm,
            self.credentials.certificate_chain,
            self.credentials.private_key,
            timestamp_url,
        )
        signed = io.BytesIO()
        # A signer per signature (a quarter of a millisecond): the native signer is not
        # documented as safe to share between threads.
        with (
            c2pa.Signer.from_info(info) as signer,
            c2pa.Builder(manifest, context=self._context) as builder,
        ):
            if origin.edited:
                # The library then opens the manifest with c2pa.opened on the parent
                # ingredient, as C2PA asks of an edit, before our c2pa.edited.
                builder.set_intent(c2pa.C2paBuilderIntent.EDIT)
            if origin.edited and read_inputs:
                for index, source in enumerate(origin.inputs):
                    try:
                        builder.add_ingredient(
                            _ingredient(index, source),
                            MEDIA_TYPES[source.format],
                            io.BytesIO(source.data),
                        )
                    except c2pa.C2paError as exc:
                        raise _UnreadableInput(str(exc)) from exc
            builder.sign(signer, MEDIA_TYPES[format], io.BytesIO(data), signed)
        return signed.getvalue()

    def _manifest(self, format: OutputFormat, origin: ImageOrigin) -> dict[str, Any]:
        action: dict[str, Any] = {
            "action": "c2pa.edited" if origin.edited else "c2pa.created",
            "digitalSourceType": (
                COMPOSITE_WITH_TRAINED_ALGORITHMIC_MEDIA
                if origin.inpainted
                else TRAINED_ALGORITHMIC_MEDIA
            ),
            "softwareAgent": SOFTWARE_AGENT,
            # C2PA has no field for the model of a generative action; its parameters are open.
            "parameters": {"model": origin.model},
        }
        assertions: list[dict[str, Any]] = [
            {"label": "c2pa.actions", "data": {"actions": [action]}}
        ]
        if self.generation_metadata and origin.generation is not None:
            assertions.append({"label": GENERATION_ASSERTION, "data": _facts(origin.generation)})
        return {
            "claim_generator_info": [SOFTWARE_AGENT],
            "title": f"image.{format}",
            "format": MEDIA_TYPES[format],
            "assertions": assertions,
        }


class _UnreadableInput(Exception):
    """An input file whose own content credentials the C2PA library cannot parse."""


def _ingredient(index: int, source: SourceFile) -> dict[str, str]:
    """The edited image is the parent; reference images are inputs to the model."""
    return {
        "title": f"input-{index}.{source.format}",
        "format": MEDIA_TYPES[source.format],
        "relationship": "parentOf" if index == 0 else "inputTo",
    }


def _facts(facts: GenerationFacts) -> dict[str, Any]:
    recorded: dict[str, Any] = {
        "prompt": facts.prompt,
        "num_inference_steps": facts.num_inference_steps,
        "guidance_scale": facts.guidance_scale,
    }
    if facts.negative_prompt:
        recorded["negative_prompt"] = facts.negative_prompt
    if facts.seed is not None:
        recorded["seed"] = facts.seed
    return recorded
