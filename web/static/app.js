// fleetreset UI: refresh the live parts of a page in place and confirm
// destructive buttons. No framework; the pages work without this file,
// they only stop refreshing. Searching instances is a plain GET form: the
// server filters and pages, so a refresh re-reads the same page.
(() => {
  "use strict";
  const every = Number(document.body.dataset.refresh) || 0;
  const live = document.getElementById("autorefresh");
  const status = document.getElementById("status");

  if (live) {
    live.checked = localStorage.getItem("fleetreset.live") !== "off";
    live.addEventListener("change", () => localStorage.setItem("fleetreset.live", live.checked ? "on" : "off"));
  }

  // The message after an action stays on screen, but a reload or a
  // refresh must not show it again: drop it from the address.
  const url = new URL(location.href);
  if (url.searchParams.has("done") || url.searchParams.has("err")) {
    ["done", "err", "n"].forEach((k) => url.searchParams.delete(k));
    history.replaceState(null, "", url.pathname + url.search);
  }

  document.addEventListener("submit", (ev) => {
    const b = ev.submitter;
    if (b && b.dataset.confirm && !window.confirm(b.dataset.confirm)) ev.preventDefault();
  });

  // busy says a live region holds something the operator is working on.
  function busy(el) {
    const a = document.activeElement;
    if (a && a !== document.body && el.contains(a) && a.matches("input, textarea, select")) return true;
    return Array.from(el.querySelectorAll("input[type=text]")).some((i) => i.value !== "") ||
      Array.from(el.querySelectorAll("input[type=checkbox]")).some((i) => i.checked);
  }

  function say(text, bad) {
    if (!status) return;
    status.textContent = text;
    status.classList.toggle("error", !!bad);
  }

  let running = false;
  async function refresh() {
    if (running || document.hidden || (live && !live.checked)) return;
    running = true;
    try {
      const res = await fetch(location.href, { cache: "no-store", headers: { Accept: "text/html" } });
      if (!res.ok) throw new Error("HTTP " + res.status);
      const doc = new DOMParser().parseFromString(await res.text(), "text/html");
      document.querySelectorAll("[data-live]").forEach((el) => {
        const fresh = doc.getElementById(el.id);
        if (fresh && !busy(el) && fresh.innerHTML !== el.innerHTML) el.innerHTML = fresh.innerHTML;
      });
      say("Updated " + new Date().toLocaleTimeString() + ".");
    } catch (e) {
      say("Refresh failed (" + e.message + "); retrying.", true);
    } finally {
      running = false;
    }
  }
  if (every > 0) setInterval(refresh, every);
})();
