"""The studio's captions API on the demo project: saves as hand edits, conflicts, find and
replace, and every request it must refuse."""

import os

import pytest
from starlette.testclient import TestClient

from wan_lora_dagster.captioning.store import CaptionStore
from wan_lora_dagster.pipeline.dataset import caption_store
from wan_lora_dagster.project import open_project
from wan_lora_dagster.studio.app import create_app
from wan_lora_dagster.studio.security import Access

CLIP = "drift"  # the demo's named range


def cards(client: TestClient, **filters) -> dict[str, dict]:
    response = client.get("/api/cards", params=filters)
    assert response.status_code == 200
    return {card["id"]: card for card in response.json()["cards"]}


def store(demo) -> CaptionStore:
    return caption_store(open_project(demo))


def test_every_clip_is_a_card_with_its_caption_poster_and_clip(client, demo):
    shown = cards(client)
    assert set(shown) == {path.stem for path in (demo / "captions").glob("*.txt")}
    card = shown[CLIP]
    assert card["text"] == (demo / "captions" / f"{CLIP}.txt").read_text().strip()
    assert card["origin"] == "auto" and card["sync"] == "fresh" and card["film"] == "shapes"
    poster = client.get(f"/posters/{CLIP}")
    assert poster.headers["content-type"] == "image/jpeg"
    assert (demo / "out" / "studio" / "posters" / f"{CLIP}.jpg").exists()
    clip_part = client.get(f"/media/{CLIP}", headers={"range": "bytes=0-99"})
    assert clip_part.status_code == 206 and len(clip_part.content) == 100


def test_a_save_is_a_hand_edit_that_the_graph_then_sees_unsynced(client, demo):
    card = cards(client)[CLIP]
    response = client.post(
        f"/api/cards/{CLIP}", json={"text": " a red square \n", "hash": card["hash"]}
    )
    assert response.status_code == 200
    assert (demo / "captions" / f"{CLIP}.txt").read_text() == "a red square\n"
    saved = response.json()
    assert saved["origin"] == "edited" and saved["sync"] == "unsynced"
    assert "no_trigger" in saved["states"]  # the demo's trigger "demostyle" is not in it
    assert store(demo).state(CLIP).origin == "edited"
    assert set(cards(client, state="edited")) == {CLIP}
    assert not [p for p in (demo / "captions").iterdir() if p.name.startswith(".")]  # no temp


def test_an_editor_edit_made_meanwhile_is_shown_and_never_overwritten(client, demo):
    card = cards(client)[CLIP]
    (demo / "captions" / f"{CLIP}.txt").write_text("typed in an editor\n")
    response = client.post(
        f"/api/cards/{CLIP}", json={"text": "from the page", "hash": card["hash"]}
    )
    assert response.status_code == 409
    assert response.json()["card"]["text"] == "typed in an editor"
    assert (demo / "captions" / f"{CLIP}.txt").read_text() == "typed in an editor\n"
    retry = client.post(
        f"/api/cards/{CLIP}",
        json={"text": "from the page", "hash": response.json()["card"]["hash"]},
    )
    assert retry.status_code == 200  # once the page has seen the editor's text, it may write


def test_find_and_replace_previews_then_writes_exactly_the_matching_captions(client, demo):
    captions = demo / "captions"
    (captions / f"{CLIP}.txt").write_text("a bunny hops\n")
    (captions / "shapes_500-3000.txt").write_text("two bunny ears\n")
    before = {path.name: path.read_bytes() for path in captions.glob("*.txt")}
    preview = client.post("/api/replace/preview", json={"find": "bunny", "replace": "hare"})
    changes = {change["id"]: change for change in preview.json()["changes"]}
    assert {key: change["after"] for key, change in changes.items()} == {
        CLIP: "a hare hops",
        "shapes_500-3000": "two hare ears",
    }
    assert {path.name: path.read_bytes() for path in captions.glob("*.txt")} == before
    seen = {key: change["hash"] for key, change in changes.items()}
    applied = client.post(
        "/api/replace/apply", json={"find": "bunny", "replace": "hare", "seen": seen}
    )
    assert sorted(card["id"] for card in applied.json()["written"]) == sorted(changes)
    after = {path.name: path.read_bytes() for path in captions.glob("*.txt")}
    assert {name for name in after if after[name] != before[name]} == {
        f"{CLIP}.txt",
        "shapes_500-3000.txt",
    }
    assert after[f"{CLIP}.txt"] == b"a hare hops\n"


def test_a_replace_skips_a_caption_edited_since_its_preview(client, demo):
    shown = cards(client)
    text = shown[CLIP]["text"]
    word = text.split()[1]
    preview = client.post("/api/replace/preview", json={"find": word, "replace": "WORD"})
    seen = {change["id"]: change["hash"] for change in preview.json()["changes"]}
    assert CLIP in seen
    (demo / "captions" / f"{CLIP}.txt").write_text(f"{text} and more\n")
    applied = client.post(
        "/api/replace/apply", json={"find": word, "replace": "WORD", "seen": seen}
    )
    assert CLIP in [card["id"] for card in applied.json()["conflicts"]]
    assert (demo / "captions" / f"{CLIP}.txt").read_text() == f"{text} and more\n"


@pytest.mark.parametrize("name", ["..", "..%2F..%2Fwan_lora", "%2Fetc%2Fpasswd", ".hidden", "nope"])
def test_a_name_outside_the_project_is_refused_and_nothing_written(client, demo, name):
    before = sorted(str(path) for path in demo.rglob("*"))
    response = client.post(f"/api/cards/{name}", json={"text": "x", "hash": ""})
    assert response.status_code in (400, 404)
    assert sorted(str(path) for path in demo.rglob("*")) == before
    # ("/media/.." is "/" once the client resolves it: the redirect to the captions page)
    assert client.get(f"/media/{name}", follow_redirects=False).status_code in (307, 400, 404)


def test_a_caption_symlinked_out_of_the_project_is_not_written_through(client, demo, tmp_path):
    outside = tmp_path / "outside.txt"
    outside.write_text("not the project's\n")
    link = demo / "captions" / f"{CLIP}.txt"
    link.unlink()
    os.symlink(outside, link)
    hash_ = cards(client)[CLIP]["hash"]
    response = client.post(f"/api/cards/{CLIP}", json={"text": "x", "hash": hash_})
    assert response.status_code == 400 and "outside" in response.json()["error"]
    assert outside.read_text() == "not the project's\n"


def test_a_write_from_another_page_is_refused(demo, studio_url):
    app = create_app(open_project(demo), Access.for_bind("127.0.0.1", None))
    for origin in ({}, {"origin": "http://evil.example"}):
        client = TestClient(app, base_url=studio_url, headers=origin)
        response = client.post(f"/api/cards/{CLIP}", json={"text": "x", "hash": ""})
        assert response.status_code == 403
    assert TestClient(app, base_url="http://evil.example").get("/api/cards").status_code == 403
    assert store(demo).state(CLIP).origin == "auto"


def test_bound_off_this_machine_every_request_needs_the_token(demo):
    with pytest.raises(ValueError, match="needs a token"):
        Access.for_bind("0.0.0.0", None)
    app = create_app(open_project(demo), Access.for_bind("0.0.0.0", "s3cret"))
    base = "http://10.1.2.3:3001"
    stranger = TestClient(app, base_url=base, headers={"origin": base})
    for path in (
        "/captions",
        "/api/cards",
        f"/media/{CLIP}",
        f"/posters/{CLIP}",
        "/static/captions.js",
    ):
        assert stranger.get(path).status_code == 403
    assert stranger.post(f"/api/cards/{CLIP}", json={"text": "x", "hash": ""}).status_code == 403
    assert stranger.get("/api/cards", params={"token": "wrong"}).status_code == 403
    member = TestClient(app, base_url=base, headers={"origin": base})
    page = member.get("/captions", params={"token": "s3cret"})
    assert page.status_code == 200
    assert member.get("/api/cards").status_code == 200  # the page's cookie carries the token
