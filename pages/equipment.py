from nicegui import APIRouter
router = APIRouter()
