"""The studio's web app: the captions, ranges and checkpoints pages, their JSON API, the clips,
posters and eval videos they show."""

from __future__ import annotations

from dataclasses import asdict
from functools import partial
from importlib.resources import files

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from wan_lora_dagster.errors import MediaError, UserError
from wan_lora_dagster.project import Project
from wan_lora_dagster.studio.caption_cards import Card
from wan_lora_dagster.studio.captions import STATES, CaptionIndex, Conflict
from wan_lora_dagster.studio.checkpoints import CheckpointsPage, RecipeConflict
from wan_lora_dagster.studio.posters import poster
from wan_lora_dagster.studio.ranges import RangeEdit, RangesConflict, RangesEditor
from wan_lora_dagster.studio.security import Access, AccessGuard
from wan_lora_dagster.studio.updates import Updater

PAGE_SIZE = 60  # cards per page: a screenful and more, each card's caption read when shown
STATIC = files("wan_lora_dagster.studio") / "static"


def create_app(project: Project, access: Access, dagster_url: str = "") -> Starlette:
    """The studio of `project`; `dagster_url`: Dagster's UI, which the pages link to."""
    index = CaptionIndex(project)
    updater = Updater(project, on_done=index.reload)
    ranges = RangesEditor(project)
    checkpoints = CheckpointsPage(project)
    routes = [
        Route("/", lambda _request: RedirectResponse("/captions")),
        Route("/captions", lambda _request: FileResponse(STATIC / "captions.html")),
        Route("/api/info", partial(_info, index, project, dagster_url)),
        Route("/api/cards", partial(_cards, index)),
        Route("/api/cards/{item_id}", partial(_save, index), methods=["POST"]),
        Route("/api/replace/preview", partial(_preview, index), methods=["POST"]),
        Route("/api/replace/apply", partial(_apply, index), methods=["POST"]),
        Route("/api/update", lambda _request: JSONResponse(updater.state())),
        Route("/api/update", partial(_start, updater), methods=["POST"]),
        Route("/ranges", lambda _request: FileResponse(STATIC / "ranges.html")),
        Route("/api/ranges", lambda _request: JSONResponse({"films": ranges.films()})),
        Route("/api/ranges/{film}", partial(_timeline, ranges)),
        Route("/api/ranges/{film}", partial(_edit_range, ranges, index), methods=["POST"]),
        Route("/films/{film}", partial(_film, ranges)),
        Route("/checkpoints", lambda _request: FileResponse(STATIC / "checkpoints.html")),
        Route("/api/checkpoints", lambda _request: JSONResponse(checkpoints.grid())),
        Route("/api/checkpoints/pin", partial(_pin, checkpoints), methods=["POST"]),
        Route("/api/checkpoints/{key}/lineage", partial(_lineage, checkpoints)),
        Route("/eval/{key}/{index:int}/{field}", partial(_eval_file, checkpoints)),
        Route("/media/{item_id}", partial(_media, index)),
        Route("/posters/{item_id}", partial(_poster, index, project)),
        Mount("/static", StaticFiles(directory=str(STATIC)), name="static"),
    ]
    middleware = [Middleware(AccessGuard, access=access)]
    app = Starlette(routes=routes, middleware=middleware, exception_handlers=_HANDLERS)
    app.state.captions = index
    return app


def _info(index: CaptionIndex, project: Project, dagster_url: str, _request) -> JSONResponse:
    return JSONResponse(
        {
            "project": str(project.root),
            "dagster_url": dagster_url,
            "films": index.films(),
            "sections": index.sections(),
            "states": STATES,
            "page_size": PAGE_SIZE,
        }
    )


def _cards(index: CaptionIndex, request: Request) -> JSONResponse:
    query = request.query_params
    filters = {name: query.get(name, "") for name in ("state", "film", "section", "text")}
    offset = max(0, int(query.get("offset", 0)))
    total, page = index.page(offset, PAGE_SIZE, **filters)
    return JSONResponse({"total": total, "offset": offset, "cards": [_json(c) for c in page]})


async def _save(index: CaptionIndex, request: Request) -> JSONResponse:
    body = await request.json()
    card = index.save(request.path_params["item_id"], str(body["text"]), str(body["hash"]))
    return JSONResponse(_json(card))


async def _preview(index: CaptionIndex, request: Request) -> JSONResponse:
    body = await request.json()
    changes = index.preview_replace(str(body["find"]), str(body.get("replace", "")))
    return JSONResponse({"changes": [asdict(change) for change in changes]})


async def _apply(index: CaptionIndex, request: Request) -> JSONResponse:
    body = await request.json()
    seen = {str(item_id): str(digest) for item_id, digest in body["seen"].items()}
    written, conflicts = index.apply_replace(str(body["find"]), str(body["replace"]), seen)
    return JSONResponse(
        {"written": [_json(c) for c in written], "conflicts": [_json(c) for c in conflicts]}
    )


def _timeline(ranges: RangesEditor, request: Request) -> JSONResponse:
    return JSONResponse(ranges.timeline(request.path_params["film"]))


async def _edit_range(ranges: RangesEditor, index: CaptionIndex, request: Request) -> JSONResponse:
    body = await request.json()
    edit = RangeEdit(
        body.get("line"), body.get("start"), body.get("end"), str(body.get("name") or "")
    )
    timeline = ranges.edit(request.path_params["film"], str(body["hash"]), edit)
    index.reload()  # the clips the ranges declare changed
    return JSONResponse(timeline)


def _film(ranges: RangesEditor, request: Request) -> Response:
    return FileResponse(ranges.film_path(request.path_params["film"]))


async def _pin(checkpoints: CheckpointsPage, request: Request) -> JSONResponse:
    body = await request.json()
    key = body.get("checkpoint")
    return JSONResponse(checkpoints.pin(None if key is None else str(key), str(body["hash"])))


def _lineage(checkpoints: CheckpointsPage, request: Request) -> JSONResponse:
    return JSONResponse(checkpoints.lineage(request.path_params["key"]))


def _eval_file(checkpoints: CheckpointsPage, request: Request) -> Response:
    """An eval video or its I2V start image, as the eval record names it."""
    params = request.path_params
    field = {"video": "file", "start_image": "start_image"}.get(params["field"], "")
    path = checkpoints.eval_file(params["key"], params["index"], field)
    if not path.exists():
        return JSONResponse({"error": f"{path} is gone: run an update"}, 404)
    return FileResponse(path)


def _start(updater: Updater, _request) -> JSONResponse:
    started = updater.start()
    return JSONResponse({"started": started, **updater.state()}, status_code=202)


def _media(index: CaptionIndex, request: Request) -> Response:
    """The clip itself (its 16 fps file), with range requests: the browser seeks in it."""
    path = index.media(request.path_params["item_id"])
    if not path.exists():
        return JSONResponse({"error": f"{path.name} is not made yet: run an update"}, 404)
    return FileResponse(path)


def _poster(index: CaptionIndex, project: Project, request: Request) -> Response:
    item_id = request.path_params["item_id"]
    media = index.media(item_id)
    if not media.exists():
        return JSONResponse({"error": f"{media.name} is not made yet: run an update"}, 404)
    return FileResponse(poster(project, item_id, media), headers={"cache-control": "no-cache"})


def _json(card: Card) -> dict:
    return {**asdict(card), "states": sorted(card.states())}


async def _conflict(_request: Request, conflict: Exception) -> JSONResponse:
    return JSONResponse({"error": str(conflict), "card": _json(conflict.card)}, status_code=409)


async def _refused(_request: Request, error: Exception) -> JSONResponse:
    return JSONResponse({"error": str(error)}, status_code=400)


async def _stale(_request: Request, error: Exception) -> JSONResponse:
    return JSONResponse({"error": str(error)}, status_code=409)


_HANDLERS = {
    Conflict: _conflict,
    RangesConflict: _stale,
    RecipeConflict: _stale,
    UserError: _refused,
    MediaError: _refused,
}
