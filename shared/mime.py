"""Reading a Content-Type header: its media type and its charset."""

from __future__ import annotations


def media_type(content_type: str | None) -> str:
    """The media type of a Content-Type value, lower case, without parameters ('' if none)."""
    return (content_type or "").split(";", 1)[0].strip().lower()


def charset_of(content_type: str | None) -> str | None:
    """The charset parameter of a Content-Type value, if any."""
    if not content_type:
        return None
    for param in content_type.split(";")[1:]:
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset" and value.strip():
            return value.strip().strip("'\"")
    return None
