// The local page's only script: the release countdown, and a quiet refresh of the page's
// content so held mail, releases and corrections made in the mail program show as they happen.
// Served from the page itself (script-src 'self'); it fetches nothing but the page it is on.
"use strict";

const REFRESH_SECONDS = 5;

function countdownText(ms) {
  if (ms <= 0) return "now";
  const total = Math.floor(ms / 1000);
  const hours = Math.floor(total / 3600);
  const minutes = Math.floor((total % 3600) / 60);
  const seconds = total % 60;
  const two = (n) => String(n).padStart(2, "0");
  if (hours > 0) return `in ${hours} h ${two(minutes)} min`;
  if (minutes > 0) return `in ${minutes} min ${two(seconds)} s`;
  return `in ${seconds} s`;
}

function tick() {
  const now = Date.now();
  for (const el of document.querySelectorAll("[data-release-at]")) {
    const at = Date.parse(el.getAttribute("data-release-at"));
    if (!Number.isNaN(at)) el.textContent = countdownText(at - now);
  }
}

function busy() {
  // Never swap the content under someone typing a time or pressing a button.
  const active = document.activeElement;
  return active !== null && active.closest("form") !== null && active.tagName === "INPUT";
}

async function refresh() {
  const live = document.querySelector("main[data-live]");
  if (live === null || busy() || document.hidden) return;
  try {
    const answer = await fetch(window.location.pathname, {
      credentials: "same-origin",
      headers: { "Accept": "text/html" },
    });
    if (!answer.ok) return;
    const page = new DOMParser().parseFromString(await answer.text(), "text/html");
    const fresh = page.querySelector("main[data-live]");
    if (fresh !== null && fresh.id === live.id && !busy()) {
      live.replaceWith(document.adoptNode(fresh));
      tick();
    }
  } catch (err) {
    // run stopped or restarting: keep what is shown, try again at the next turn
  }
}

document.addEventListener("DOMContentLoaded", () => {
  tick();
  setInterval(tick, 1000);
  setInterval(refresh, REFRESH_SECONDS * 1000);
});
