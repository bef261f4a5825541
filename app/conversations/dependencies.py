"""The text extractor of the app (its child process, app.conversations.extraction_process), as a
dependency of the routes that take uploads."""

from typing import Annotated

from fastapi import Depends, Request

from app.conversations.extraction_process import TextExtractor


async def get_text_extractor(request: Request) -> TextExtractor:
    extractor: TextExtractor = request.app.state.extractor
    return extractor


TextExtractorDep = Annotated[TextExtractor, Depends(get_text_extractor)]
