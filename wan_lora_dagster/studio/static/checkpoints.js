// The checkpoints page: every checkpoint's eval videos in one grid (rows: checkpoints, columns:
// strengths) played together, the validation loss per checkpoint drawn as an SVG, the pinned or
// chosen checkpoint marked, a pin written into wan_lora.toml, and the captions that trained one.
"use strict";

const SVG = "http://www.w3.org/2000/svg";
const view = { grid: null };

function element(tag, properties = {}, ...children) {
  const node = Object.assign(document.createElement(tag), properties);
  node.append(...children);
  return node;
}

async function start() {
  const { status, data } = await api("/api/checkpoints");
  if (status !== 200) return say(data.error);
  data.prompts.forEach((prompt, index) => $("prompt").add(new Option(prompt, index)));
  for (const seed of data.seeds) $("seed").add(new Option(seed, seed));
  $("prompt").onchange = $("seed").onchange = () => drawGrid();
  $("play-all").onclick = playAll;
  $("unpin").onclick = () => pin(null);
  show(data);
}

function show(grid) {
  view.grid = grid;
  const marked = grid.pin ? `pinned: ${grid.pin}` : grid.chosen ? `lowest loss: ${grid.chosen}` : "";
  $("choice").textContent = marked ? `best_lora exports ${marked}` : "";
  $("unpin").disabled = !grid.pin;
  say(grid.pin_problem);
  drawPlot();
  drawGrid();
}

function drawPlot() {
  const points = view.grid.checkpoints.filter((row) => row.validation_loss !== null && row.step !== null);
  if (!points.length) return $("plot").replaceChildren(element("p", { className: "hint", textContent: "No validation loss (no clip held out)." }));
  const [width, height, margin] = [560, 220, 40];
  const steps = points.map((p) => p.step), losses = points.map((p) => p.validation_loss);
  const scale = (values, low, high) => {
    const [min, max] = [Math.min(...values), Math.max(...values)];
    return (value) => (max === min ? (low + high) / 2 : low + ((value - min) * (high - low)) / (max - min));
  };
  const x = scale(steps, margin, width - margin), y = scale(losses, height - margin, margin);
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("width", width); svg.setAttribute("height", height);
  const add = (tag, attributes, text) => {
    const node = document.createElementNS(SVG, tag);
    for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
    if (text !== undefined) node.textContent = text;
    svg.append(node);
    return node;
  };
  add("polyline", { points: points.map((p) => `${x(p.step)},${y(p.validation_loss)}`).join(" "), fill: "none", stroke: "#3451b2" });
  const marked = view.grid.pin || view.grid.chosen;
  for (const point of points) {
    const chosen = point.checkpoint === marked;
    const dot = add("circle", { cx: x(point.step), cy: y(point.validation_loss), r: chosen ? 7 : 4, fill: chosen ? "#1b7f3b" : "#3451b2" });
    const title = document.createElementNS(SVG, "title");
    title.textContent = `${point.checkpoint}: step ${point.step}, loss ${point.validation_loss.toFixed(5)}`;
    dot.append(title);
    dot.onclick = () => document.getElementById(`row-${point.checkpoint}`)?.scrollIntoView({ block: "center" });
    add("text", { x: x(point.step), y: height - 12, "text-anchor": "middle", "font-size": 10 }, point.step);
  }
  add("text", { x: 4, y: 14, "font-size": 10 }, `max ${Math.max(...losses).toFixed(4)}`);
  add("text", { x: 4, y: height - 26, "font-size": 10 }, `min ${Math.min(...losses).toFixed(4)}`);
  $("plot").replaceChildren(svg);
}

function drawGrid() {
  const grid = view.grid, prompt = grid.prompts[Number($("prompt").value) || 0], seed = Number($("seed").value);
  const head = element("tr", {}, element("th", { textContent: "checkpoint" }),
    ...grid.strengths.map((strength) => element("th", { textContent: `strength ${strength}` })));
  const rows = grid.checkpoints.map((row) => {
    const chosen = row.checkpoint === (grid.pin || grid.chosen);
    const use = element("button", { textContent: row.checkpoint === grid.pin ? "pinned" : "use this one", disabled: !row.evaluated || row.checkpoint === grid.pin });
    use.onclick = () => pin(row.checkpoint);
    const trained = element("button", { textContent: "captions that trained it" });
    trained.onclick = () => lineage(row.checkpoint);
    const loss = row.validation_loss === null ? "no loss" : `loss ${row.validation_loss.toFixed(5)}`;
    const label = element("th", {}, element("div", { textContent: row.checkpoint }),
      element("div", { className: "hint", textContent: `step ${row.step ?? "?"} · ${row.evaluated ? loss : "not evaluated"}` }), use, trained);
    const cells = grid.strengths.map((strength) => element("td", {}, ...row.videos
      .filter((video) => video.prompt === prompt && video.seed === seed && video.strength === strength)
      .map((video) => cell(row.checkpoint, video))));
    return element("tr", { id: `row-${row.checkpoint}`, className: chosen ? "chosen" : "" }, label, ...cells);
  });
  $("eval-grid").replaceChildren(head, ...rows);
}

function cell(checkpoint, video) {
  const base = `/eval/${encodeURIComponent(checkpoint)}/${video.index}`;
  const player = element("video", { src: `${base}/video`, muted: true, loop: true, preload: "metadata" });
  if (!video.start_image) return player;
  const image = element("img", { src: `${base}/start_image`, alt: "I2V start image", title: video.start_image });
  return element("div", { className: "toolbar" }, image, player);
}

function playAll() {
  const videos = [...document.querySelectorAll("#eval-grid video")];
  const playing = videos.some((video) => !video.paused);
  for (const video of videos) {
    if (playing) { video.pause(); continue; }
    video.currentTime = 0;
    video.play();
  }
  $("play-all").textContent = playing ? "Play all" : "Pause all";
}

async function pin(checkpoint) {
  const { status, data } = await api("/api/checkpoints/pin", { checkpoint, hash: view.grid.hash });
  if (status !== 200) return say(data.error);
  show(data);
}

async function lineage(checkpoint) {
  const { status, data } = await api(`/api/checkpoints/${encodeURIComponent(checkpoint)}/lineage`);
  if (status !== 200) return say(data.error);
  $("lineage-title").textContent = `Captions that trained ${checkpoint} (training set ${data.training_set})`;
  $("lineage").replaceChildren(...data.clips.map((clip) => element("li", { className: clip.changed_since ? "changed" : "" },
    `${clip.clip}${clip.held_out ? " (held out)" : ""}: ${clip.caption}`,
    clip.changed_since ? ` — now: ${clip.caption_now ?? "gone"}` : "")));
  $("lineage-title").scrollIntoView();
}

start();
