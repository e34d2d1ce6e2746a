// The captions page: cards of clips and stills, their captions edited in place.
// Every write sends the hash of the file the page last read: the server refuses it if an
// editor changed the file meanwhile, and the card then shows both texts.
"use strict";

const view = { offset: 0, total: 0, pageSize: 60, dagsterUrl: "", preview: null };

function filters() {
  return { state: $("filter-state").value, film: $("filter-film").value,
           section: $("filter-section").value, text: $("filter-text").value };
}

async function start() {
  const { data } = await api("/api/info");
  view.pageSize = data.page_size;
  view.dagsterUrl = data.dagster_url;
  $("project").textContent = data.project;
  $("dagster-link").href = data.dagster_url || "#";
  fill($("filter-state"), data.states);
  fill($("filter-film"), data.films);
  fill($("filter-section"), data.sections);
  for (const id of ["filter-state", "filter-film", "filter-section"]) $(id).onchange = () => load(0);
  $("filter-text").oninput = debounce(() => load(0), 250);
  $("page-previous").onclick = () => load(Math.max(0, view.offset - view.pageSize));
  $("page-next").onclick = () => view.offset + view.pageSize < view.total && load(view.offset + view.pageSize);
  $("preview-replace").onclick = previewReplace;
  $("apply-replace").onclick = applyReplace;
  $("cancel-replace").onclick = () => { $("preview").hidden = true; view.preview = null; };
  $("update").onclick = startUpdate;
  await load(0);
  watchUpdate();
}

function fill(select, values) {
  for (const value of values) select.add(new Option(value.replace("_", " "), value));
}

function debounce(action, ms) {
  let timer;
  return () => { clearTimeout(timer); timer = setTimeout(action, ms); };
}

async function load(offset) {
  const query = new URLSearchParams({ ...filters(), offset });
  const { status, data } = await api(`/api/cards?${query}`);
  if (status !== 200) return say(data.error);
  view.offset = data.offset;
  view.total = data.total;
  const last = Math.min(data.offset + data.cards.length, data.total);
  $("page-info").textContent = data.total ? `${data.offset + 1}–${last} of ${data.total}` : "no captions match";
  $("grid").replaceChildren(...data.cards.map(makeCard));
}

function makeCard(card) {
  const element = $("card-template").content.firstElementChild.cloneNode(true);
  element.dataset.id = card.id;
  element.querySelector(".id").textContent = card.id;
  element.querySelector(".where").textContent = card.kind === "clip" ? `${card.film} ${card.span}` : "still";
  const dagster = element.querySelector(".dagster");
  const asset = card.kind === "clip" ? "captions" : "still_captions";
  if (view.dagsterUrl) dagster.href = `${view.dagsterUrl}/assets/${asset}?view=partitions&partition=${encodeURIComponent(card.batch)}`;
  else dagster.remove();
  const image = element.querySelector("img");
  image.src = `/posters/${encodeURIComponent(card.id)}`;
  element.querySelector(".media").onclick = () => play(element, card);
  const textarea = element.querySelector("textarea");
  textarea.oninput = () => element.classList.toggle("dirty", textarea.value.trim() !== element.card.text);
  textarea.onkeydown = (event) => onKey(event, element);
  element.querySelector(".save").onclick = () => save(element);
  element.querySelector(".take-disk").onclick = () => takeDisk(element);
  show(element, card);
  return element;
}

function show(element, card) {
  element.card = card;
  element.querySelector("textarea").value = card.text;
  element.classList.remove("dirty");
  const badges = element.querySelector(".badges");
  badges.replaceChildren(...card.states.map((state) => {
    const badge = document.createElement("span");
    badge.className = state;
    badge.textContent = state === "banned" ? `banned: ${card.banned.join(", ")}` : state.replace("_", " ");
    return badge;
  }));
}

function play(element, card) {
  const media = element.querySelector(".media");
  if (card.kind !== "clip" || media.querySelector("video")) return;
  const video = document.createElement("video");
  const id = encodeURIComponent(card.id);
  Object.assign(video, { src: `/media/${id}`, poster: `/posters/${id}`, controls: true, loop: true, muted: true, autoplay: true });
  media.replaceChildren(video);
}

async function save(element) {
  const textarea = element.querySelector("textarea");
  const note = element.querySelector(".note");
  const { status, data } = await api(`/api/cards/${encodeURIComponent(element.card.id)}`, { text: textarea.value, hash: element.card.hash });
  note.className = "note";
  if (status === 200) {
    show(element, data);
    element.querySelector(".conflict").hidden = true;
    note.textContent = "saved";
    note.classList.add("saved");
    return true;
  }
  if (status === 409) {
    const conflict = element.querySelector(".conflict");
    conflict.hidden = false;
    conflict.querySelector(".disk").textContent = data.card.text;
    element.conflictCard = data.card;
    note.textContent = "not saved: changed in the file";
    return false;
  }
  note.textContent = data.error;
  return false;
}

function takeDisk(element) {
  show(element, element.conflictCard);
  element.querySelector(".conflict").hidden = true;
  element.querySelector(".note").textContent = "the file's text";
}

function onKey(event, element) {
  if ((event.ctrlKey || event.metaKey) && (event.key === "Enter" || event.key === "s")) {
    event.preventDefault();
    save(element).then((saved) => saved && event.key === "Enter" && move(element, 1));
  } else if (event.altKey && (event.key === "ArrowDown" || event.key === "ArrowUp")) {
    event.preventDefault();
    move(element, event.key === "ArrowDown" ? 1 : -1);
  } else if (event.key === "Escape") {
    show(element, element.card);
  }
}

function move(element, step) {
  const next = step > 0 ? element.nextElementSibling : element.previousElementSibling;
  if (next) {
    next.querySelector("textarea").focus();
    next.scrollIntoView({ block: "nearest" });
  }
}

async function previewReplace() {
  const find = $("find").value;
  const replace = $("replace").value;
  const { status, data } = await api("/api/replace/preview", { find, replace });
  if (status !== 200) return say(data.error);
  say("");
  view.preview = { find, replace, seen: Object.fromEntries(data.changes.map((c) => [c.id, c.hash])) };
  $("preview-title").textContent = `${data.changes.length} caption(s) would change:`;
  $("preview-list").replaceChildren(...data.changes.map((change) => {
    const item = document.createElement("li");
    item.dataset.id = change.id;
    item.append(Object.assign(document.createElement("b"), { textContent: `${change.id}: ` }));
    item.append(Object.assign(document.createElement("del"), { textContent: change.before }));
    item.append(" → ");
    item.append(Object.assign(document.createElement("ins"), { textContent: change.after }));
    return item;
  }));
  $("apply-replace").disabled = data.changes.length === 0;
  $("preview").hidden = false;
}

async function applyReplace() {
  const { status, data } = await api("/api/replace/apply", view.preview);
  if (status !== 200) return say(data.error);
  $("preview").hidden = true;
  view.preview = null;
  const skipped = data.conflicts.map((card) => card.id);
  say(skipped.length ? `changed in the files meanwhile, left alone: ${skipped.join(", ")}` : "");
  $("update-state").textContent = `replaced in ${data.written.length} caption(s)`;
  // only the written cards change: an unsaved edit in another card stays as it is
  for (const card of [...data.written, ...data.conflicts]) {
    const element = document.querySelector(`.card[data-id="${CSS.escape(card.id)}"]`);
    if (element && !element.classList.contains("dirty")) show(element, card);
  }
}

async function startUpdate() {
  const { data } = await api("/api/update", {});
  if (!data.started) say("an update is already running");
  watchUpdate();
}

async function watchUpdate() {
  const { data } = await api("/api/update");
  $("update").disabled = data.running;
  if (data.running) {
    $("update-state").textContent = `updating… ${data.progress}`;
    setTimeout(watchUpdate, 1000);
    return;
  }
  if (data.runs === 0) return;
  const made = Object.entries(data.summary).filter(([, s]) => s.made.length).map(([asset, s]) => `${asset} ${s.made.length}`);
  const failed = Object.entries(data.summary).filter(([, s]) => s.failed.length).map(([asset, s]) => `${asset} ${s.failed.length}`);
  $("update-state").textContent = data.error ? `update failed: ${data.error}`
    : `updated: made ${made.join(", ") || "nothing (all fresh)"}${failed.length ? `; failed ${failed.join(", ")}` : ""}`;
  if (!document.querySelector(".card.dirty")) load(view.offset);
}

start();
