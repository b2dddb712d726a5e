"""The operations between the wire and the engine, one entry each, for every caller.

    images.py           ImageService.generate / edit / create_variation: the image entries
    planning.py         a request to an ImagePlan: the engine job, every default resolved
    plans.py            what an ImagePlan holds
    names.py            the OpenAI model names and the rules each carries
    inputs.py           input images decoded and checked (uploads, data URLs)
    moderation_gate.py  the moderation checks of one request, in the order they gate it
    output.py           matting, encoding, URL storage: what leaves the server
    events.py           the stream events
    usage.py            `usage` figures
    models.py           the Models API's list of names
    moderations.py      the Moderations API
    backend.py          what the service needs of the engine

No web framework here: of the API layer the service uses only the wire models
(`pixelsmith.api.protocol`).
"""

from pixelsmith.service.images import ImageService, ImageStream, RequestContext
from pixelsmith.service.inputs import InputImages

__all__ = ["ImageService", "ImageStream", "InputImages", "RequestContext"]
