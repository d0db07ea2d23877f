"""What the map shows beside the cursor: an object's stored thumbnail as a PNG data URI, with a one-line caption."""

from __future__ import annotations

import base64
import math

from backend.store import Atlas

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_data_uri(png: bytes) -> str:
    """PNG bytes as a `data:image/png;base64,...` URI (an image the browser shows without another request)."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def hover_card(atlas: Atlas, object_id: str) -> dict | None:
    """{'id', 'src' (PNG data URI, '' when the object has no PNG thumbnail), 'text'} for one object; None when absent."""
    found = atlas.get_objects([object_id], ["thumbnail", "redshift", "survey"])
    if found.empty:
        return None
    row = found.iloc[0]
    thumb = row["thumbnail"]
    png = bytes(thumb) if isinstance(thumb, bytes | bytearray) and bytes(thumb).startswith(PNG_SIGNATURE) else b""
    z = row["redshift"]
    z_text = f" · z={float(z):.4f}" if z is not None and not (isinstance(z, float) and math.isnan(z)) else ""
    return {"id": str(object_id), "src": png_data_uri(png) if png else "", "text": f"{object_id}{z_text}"}
