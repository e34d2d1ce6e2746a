// What every studio page uses: its elements by id, the JSON API, and its message line.
// Loaded before the page's own script (both deferred, so in order).
"use strict";

const $ = (id) => document.getElementById(id);

async function api(path, body) {
  const options = body === undefined ? {} : {
    method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body),
  };
  const response = await fetch(path, options);
  const data = await response.json().catch(() => ({ error: response.statusText }));
  return { status: response.status, data };
}

function say(text) { $("message").textContent = text || ""; }
