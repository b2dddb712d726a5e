"""Provenance of the images pixelsmith returns: C2PA content credentials.

    credentials.py   ContentCredentials.sign(data, format, origin): the manifest of one image
    certificates.py  what signs: configured certificate and key, or a local authority

Importing this package needs neither c2pa-python nor cryptography (the c2pa extra): they are
imported when a ContentCredentials is built (builders.build_content_credentials).
"""

from pixelsmith.provenance.credentials import (
    ContentCredentials,
    GenerationFacts,
    ImageOrigin,
    SourceFile,
)

__all__ = ["ContentCredentials", "GenerationFacts", "ImageOrigin", "SourceFile"]
