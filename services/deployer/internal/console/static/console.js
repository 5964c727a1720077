// Rampart console: live rollouts over server-sent events, operator actions
// and "verify now" as JSON requests. No dependencies, no build step.
"use strict";

function fromHTML(html) {
  const t = document.createElement("template");
  t.innerHTML = html.trim();
  return t.content.firstElementChild;
}

// apply puts a rollout's card (an update from the server) on the page.
function apply(u) {
  const card = fromHTML(u.html);
  const old = document.getElementById(u.id);
  if (old) {
    // Keep a reason being typed and the last action's result.
    const typing = old.querySelector("input[name=reason]");
    const result = old.querySelector("output.result");
    if (typing && typing.value) {
      const r = card.querySelector("input[name=reason]");
      if (r) r.value = typing.value;
    }
    if (result && result.textContent) {
      const r = card.querySelector("output.result");
      if (r) r.textContent = result.textContent;
    }
    old.replaceWith(card);
    return;
  }
  const list = document.getElementById("app-" + u.app + "-rollouts");
  if (!list) return;
  list.prepend(card);
  const empty = list.parentElement.querySelector(".empty");
  if (empty) empty.remove();
}

function follow() {
  const live = document.getElementById("live");
  const es = new EventSource("/console/events");
  es.addEventListener("open", () => { live.textContent = "Live"; live.dataset.state = "live"; });
  es.addEventListener("error", () => { live.textContent = "Reconnecting…"; live.dataset.state = "down"; });
  es.addEventListener("rollout", (ev) => apply(JSON.parse(ev.data)));
}

async function post(url, body) {
  const res = await fetch(url, {
    method: "POST",
    credentials: "same-origin",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
  let data = {};
  try { data = await res.json(); } catch (e) { /* not JSON */ }
  if (!res.ok) throw new Error(data.error || res.status + " " + res.statusText);
  return data;
}

document.addEventListener("submit", async (ev) => {
  const form = ev.target;
  if (!form.matches("form.act, form.verify")) return;
  ev.preventDefault();
  const out = form.querySelector("output.result");
  const buttons = form.querySelectorAll("button");
  buttons.forEach((b) => { b.disabled = true; });
  try {
    if (form.matches("form.act")) {
      const action = ev.submitter ? ev.submitter.value : "";
      out.textContent = action + "…";
      const u = await post(form.getAttribute("action") + "/" + encodeURIComponent(action), { reason: form.elements.reason.value });
      apply(u);
      const now = document.getElementById(u.id);
      const o = now && now.querySelector("output.result");
      if (o) o.textContent = action + ": done";
    } else {
      out.textContent = "Verifying…";
      const u = await post(form.getAttribute("action"), {});
      document.getElementById("ledger-status").innerHTML = u.html;
    }
  } catch (e) {
    out.textContent = e.message;
    buttons.forEach((b) => { b.disabled = false; });
  }
});

// Count down to each rollout's next step.
function tick() {
  document.querySelectorAll("time.countdown").forEach((t) => {
    const s = Math.round((Date.parse(t.dateTime) - Date.now()) / 1000);
    t.textContent = s > 0 ? "in " + s + "s" : "now";
  });
}

if (document.getElementById("rollouts")) {
  follow();
  setInterval(tick, 1000);
}
