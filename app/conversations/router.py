from fastapi import APIRouter

router = APIRouter()
media_router = APIRouter()
