// The ranges page: a film's ranges as bars over its timeline with its scene cuts. Each edit
// names the ranges file's content the page read; the server refuses it if the file changed.
"use strict";

const view = { film: "", timeline: null, picked: null };

const seconds = (value) => Math.round(value * 1000) / 1000;

async function start() {
  const { data } = await api("/api/ranges");
  for (const film of data.films) $("film").add(new Option(film, film));
  $("film").onchange = () => open($("film").value);
  $("timeline").onclick = onTimeline;
  $("add").onclick = () => edit({ line: null, start: $("start").value, end: $("end").value, name: $("name").value });
  $("move").onclick = () => edit({ line: view.picked.line, start: $("start").value, end: $("end").value });
  $("delete").onclick = () => edit({ line: view.picked.line });
  $("play").onclick = play;
  $("player").ontimeupdate = () => {
    const player = $("player");
    if (player.dataset.end && player.currentTime >= Number(player.dataset.end)) player.pause();
  };
  if (data.films.length) await open(data.films[0]);
}

async function open(film) {
  view.film = film;
  $("player").src = `/films/${encodeURIComponent(film)}`;
  const { status, data } = await api(`/api/ranges/${encodeURIComponent(film)}`);
  if (status !== 200) return say(data.error);
  draw(data);
}

function draw(timeline) {
  view.timeline = timeline;
  pick(null);
  const bar = $("timeline");
  const at = (time) => `${(100 * time) / timeline.duration}%`;
  const marks = timeline.cuts.map((cut) => {
    const mark = document.createElement("span");
    mark.className = "cut";
    mark.style.left = at(cut);
    mark.title = `scene cut at ${cut} s`;
    return mark;
  });
  const bars = timeline.ranges.map((range) => {
    const block = document.createElement("span");
    block.className = "range";
    block.dataset.line = range.line;
    block.style.left = at(range.start);
    block.style.width = at(range.end - range.start);
    block.title = `${range.clip_id}: ${range.span}`;
    block.onclick = (event) => { event.stopPropagation(); pick(range); };
    return block;
  });
  bar.replaceChildren(...marks, ...bars);
  $("range-list").replaceChildren(...timeline.ranges.map((range) => {
    const item = document.createElement("li");
    item.textContent = `line ${range.line}: ${range.clip_id} ${range.span}${range.note ? ` — ${range.note}` : ""}`;
    item.onclick = () => pick(range);
    return item;
  }));
}

function pick(range) {
  say("");
  view.picked = range;
  $("move").disabled = $("delete").disabled = !range;
  $("picked").textContent = range ? `picked: line ${range.line}, ${range.clip_id}` : "";
  for (const block of document.querySelectorAll(".range")) block.classList.toggle("picked", !!range && Number(block.dataset.line) === range.line);
  if (range) { $("start").value = seconds(range.start); $("end").value = seconds(range.end); }
}

function onTimeline(event) {
  const box = $("timeline").getBoundingClientRect();
  const time = seconds(((event.clientX - box.left) / box.width) * view.timeline.duration);
  $(event.shiftKey ? "end" : "start").value = time;
  $("player").currentTime = time;
}

async function edit(change) {
  const { status, data } = await api(`/api/ranges/${encodeURIComponent(view.film)}`, { ...change, hash: view.timeline.hash });
  if (status !== 200) return say(data.error);
  say("");
  draw(data);
}

function play() {
  const player = $("player");
  player.currentTime = Number($("start").value) || 0;
  player.dataset.end = $("end").value;
  player.play();
}

start();
