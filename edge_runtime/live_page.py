"""The page ``edgekit camera --serve`` shows at ``/``: the live video, the top-k labels and
scores, frames per second and the milliseconds of each stage, updated from the prediction
feed. Self-contained (no script, style or font from elsewhere): a Pi often has no internet.
The token the page was opened with (``?token=...``) goes with each of its requests."""

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>edgekit camera</title>
<style>
  body { font-family: system-ui, sans-serif; margin: 1rem; background: #111; color: #eee; }
  h1 { font-size: 1.2rem; margin: 0 0 .5rem; }
  .row { display: flex; flex-wrap: wrap; gap: 1rem; align-items: flex-start; }
  #video { max-width: 100%; background: #000; min-width: 320px; min-height: 240px; }
  table { border-collapse: collapse; min-width: 16rem; }
  td { padding: .2rem .4rem; }
  .bar { background: #2a7; height: .8rem; }
  .muted { color: #999; }
  #top1 { font-size: 1.6rem; font-weight: bold; }
</style>
</head>
<body>
<h1>edgekit camera</h1>
<p id="status" class="muted">connecting</p>
<div class="row">
  <img id="video" alt="the camera's frames, annotated">
  <div>
    <p><span id="top1">-</span> <span id="top1-score" class="muted"></span></p>
    <table id="labels"></table>
    <p><span id="fps">-</span> fps &middot; frame <span id="frame">-</span></p>
    <p class="muted">ms per frame: capture <span id="ms-capture">-</span>,
      preprocess <span id="ms-preprocess">-</span>, inference <span id="ms-inference">-</span></p>
    <p id="video-state" class="muted">waiting for the first frame</p>
  </div>
</div>
<script>
"use strict";
const query = location.search;
const byId = (id) => document.getElementById(id);
const video = byId("video");
video.src = "/stream.mjpg" + query;
function showVideoState() {
  if (video.naturalWidth > 0) {
    byId("video-state").textContent =
      "showing frames, " + video.naturalWidth + "x" + video.naturalHeight;
  }
}
video.addEventListener("load", showVideoState);
setInterval(showVideoState, 250);
fetch("/status.json" + query).then((r) => r.json()).then((s) => {
  byId("status").textContent = s.model + " on " + s.backend + ", frames from " + s.source;
}).catch(() => { byId("status").textContent = "status unavailable"; });
let latest = null;
let scheduled = false;
function render() {
  scheduled = false;
  const p = latest;
  byId("top1").textContent = p.label;
  byId("top1-score").textContent = p.score.toFixed(2);
  const table = byId("labels");
  table.replaceChildren(...p.top_k.map((entry) => {
    const row = document.createElement("tr");
    const name = document.createElement("td");
    name.textContent = entry.label;
    const score = document.createElement("td");
    score.textContent = entry.score.toFixed(2);
    const bar = document.createElement("td");
    const fill = document.createElement("div");
    fill.className = "bar";
    fill.style.width = Math.round(120 * entry.score) + "px";
    bar.append(fill);
    row.append(name, score, bar);
    return row;
  }));
  byId("fps").textContent = p.fps.toFixed(1);
  byId("frame").textContent = p.frame;
  for (const stage of ["capture", "preprocess", "inference"]) {
    byId("ms-" + stage).textContent = p.ms[stage].toFixed(2);
  }
}
const feed = new EventSource("/predictions" + query);
feed.onmessage = (event) => {
  latest = JSON.parse(event.data);
  if (!scheduled) {  // at most ten redraws a second, however fast the frames come
    scheduled = true;
    setTimeout(render, 100);
  }
};
feed.addEventListener("end", () => {
  feed.close();
  byId("status").textContent += " (the run has ended)";
});
</script>
</body>
</html>
"""
