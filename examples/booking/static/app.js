// The booking page: sign in with a token, watch the board live (server-sent events read
// with fetch, so the token travels in the Authorization header, never in a URL), book,
// cancel, join the waitlist; admins schedule. No build step, no dependencies.
"use strict";

const $ = (selector) => document.querySelector(selector);
const state = { token: sessionStorage.getItem("booking-token"), you: null, feed: null };

function headers(json) {
  const h = { Authorization: "Bearer " + state.token };
  if (json) h["Content-Type"] = "application/json";
  return h;
}

function say(text, ok) {
  const m = $("#message");
  m.textContent = text;
  m.className = ok ? "ok" : "bad";
}

async function call(path, body) {
  const response = await fetch(path, { method: "POST", headers: headers(true), body: JSON.stringify(body) });
  let data = {};
  try { data = await response.json(); } catch (e) { /* not JSON: keep {} */ }
  if (response.status === 401) { signOut("Your token was refused: " + (data.message || "sign in again")); }
  return { status: response.status, data };
}

function describeBooking(occurrence, data) {
  switch (data.status) {
    case "booked": return [`Booked: seat ${data.seat} on ${occurrence}.`, true];
    case "already": return [`You already hold seat ${data.seat} on ${occurrence}.`, true];
    case "waitlisted": return [`${occurrence} is full: you are number ${data.position} on the waitlist.`, true];
    case "full": return [`Sorry, ${occurrence} is full.`, false];
    default: return [data.message || "Booking failed.", false];
  }
}

async function book(occurrence, waitlist) {
  const { data } = await call("/book", { occurrence, waitlist });
  const [text, ok] = describeBooking(occurrence, data);
  say(text, ok);
}

async function cancel(occurrence) {
  const { data } = await call("/cancel", { occurrence });
  if (data.status === "cancelled") say(`Cancelled your seat on ${occurrence}.`, true);
  else if (data.status === "left_waitlist") say(`You left the waitlist of ${occurrence}.`, true);
  else say(data.message || `Nothing to cancel on ${occurrence}.`, false);
}

function button(label, cls, onClick) {
  const b = document.createElement("button");
  b.type = "button";
  b.textContent = label;
  b.className = cls;
  b.addEventListener("click", async () => { b.disabled = true; try { await onClick(); } finally { b.disabled = false; } });
  return b;
}

function cell(text, cls) {
  const td = document.createElement("td");
  td.textContent = text;
  if (cls) td.className = cls;
  return td;
}

function render(view) {
  state.you = view.you;
  $("#who").textContent = `Signed in as ${view.you.actor}${view.you.admin ? " (admin)" : ""}`;
  $("#admin-panel").hidden = !view.you.admin;
  const body = $("#board tbody");
  body.replaceChildren();
  for (const o of view.occurrences) {
    const tr = document.createElement("tr");
    tr.dataset.occurrence = o.occurrence;
    if (o.seats_left === 0) tr.classList.add("full");
    let you = "";
    if (o.your_seat) you = `seat ${o.your_seat}`;
    else if (o.your_waitlist_position) you = `waitlist #${o.your_waitlist_position}`;
    tr.append(
      cell(o.occurrence, "name"),
      cell(o.seats_left === null ? "?" : String(o.seats_left), "num seats"),
      cell(o.capacity === null ? "–" : String(o.capacity), "num"),
      cell(String(o.waitlist), "num"),
      cell(you, "you"),
    );
    const actions = cell("", "actions");
    if (o.your_seat || o.your_waitlist_position) {
      actions.append(button(o.your_seat ? "Cancel" : "Leave waitlist", "secondary cancel", () => cancel(o.occurrence)));
    } else if (o.capacity !== null && o.seats_left === 0) {
      actions.append(button("Join waitlist", "secondary waitlist", () => book(o.occurrence, true)));
    } else if (o.capacity !== null) {
      actions.append(button("Book", "book", () => book(o.occurrence, false)));
    }
    tr.append(actions);
    body.append(tr);
  }
  $("#empty").hidden = view.occurrences.length > 0;
}

function setLive(on) {
  const badge = $("#live");
  badge.textContent = on ? "live" : "offline";
  badge.className = "badge " + (on ? "on" : "off");
}

// Reads the text/event-stream of /events; each "data:" line is a whole board.
async function follow(controller) {
  let delay = 500;
  while (!controller.signal.aborted) {
    try {
      const response = await fetch("/events", { headers: headers(false), signal: controller.signal });
      if (response.status === 401) { signOut("Your token was refused; sign in again."); return; }
      if (!response.ok) throw new Error("HTTP " + response.status);
      setLive(true);
      delay = 500;
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        let end;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          const message = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const data = message.split("\n").filter((l) => l.startsWith("data: ")).map((l) => l.slice(6)).join("\n");
          if (data) render(JSON.parse(data));
        }
      }
    } catch (e) {
      if (controller.signal.aborted) return;
    }
    setLive(false);
    await new Promise((r) => setTimeout(r, delay));
    delay = Math.min(delay * 2, 8000);
  }
}

function signIn(token) {
  state.token = token.trim();
  $("#signin-error").textContent = "";
  sessionStorage.setItem("booking-token", state.token);
  $("#signin-panel").hidden = true;
  $("#app-panel").hidden = false;
  $("#signout").hidden = false;
  state.feed = new AbortController();
  follow(state.feed);
}

function signOut(reason) {
  if (state.feed) state.feed.abort();
  state.feed = null;
  state.token = null;
  sessionStorage.removeItem("booking-token");
  $("#signin-panel").hidden = false;
  $("#app-panel").hidden = true;
  $("#signout").hidden = true;
  $("#who").textContent = "";
  setLive(false);
  $("#signin-error").textContent = reason || "";
}

document.addEventListener("DOMContentLoaded", () => {
  $("#signin-form").addEventListener("submit", (e) => { e.preventDefault(); signIn($("#token").value); });
  $("#signout").addEventListener("click", () => signOut(null));
  $("#schedule-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const occurrence = $("#schedule-occurrence").value.trim();
    const capacity = Number($("#schedule-capacity").value);
    const { status, data } = await call("/schedule", { occurrence, capacity });
    if (status === 201) say(`Scheduled ${occurrence} with ${capacity} seats.`, true);
    else if (status === 200) say(`${occurrence} was already scheduled with ${capacity} seats.`, true);
    else say(data.message || "Scheduling failed.", false);
  });
  if (state.token) signIn(state.token);
});
