// mcpwatch console: the little the pages need beyond HTML forms. No inline script,
// no library; every text a laptop wrote is set with textContent, never as HTML.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  // Forms that ask before they act (dismiss all, delete).
  for (const form of document.querySelectorAll("form[data-confirm]")) {
    form.addEventListener("submit", (event) => {
      if (!window.confirm(form.dataset.confirm)) {
        event.preventDefault();
      }
    });
  }

  // Copy buttons: copy the text of the element they name.
  for (const button of document.querySelectorAll("button[data-copy]")) {
    button.hidden = false;
    button.addEventListener("click", async () => {
      const source = document.getElementById(button.dataset.copy);
      if (!source) return;
      try {
        await navigator.clipboard.writeText(source.textContent.trim());
        button.textContent = "Copied";
      } catch {
        button.textContent = "Select and copy by hand";
      }
    });
  }

  // Filters that apply as soon as they change.
  for (const select of document.querySelectorAll("select[data-autosubmit]")) {
    select.addEventListener("change", () => select.form.requestSubmit());
  }

  // New alerts, live: a banner that says so and offers to reload. The stream is open
  // only while the page is shown: browsers allow six connections per host, and a
  // stream left open by hidden tabs or pages being navigated away from would take them.
  const live = document.getElementById("live");
  if (live && window.EventSource) {
    let events = null;
    let count = 0;
    const announce = (message) => {
      let title = "";
      try {
        title = JSON.parse(message.data).data.alert.title || "";
      } catch {
        title = "";
      }
      count += 1;
      live.replaceChildren();
      const text = document.createElement("span");
      text.textContent = count === 1 ? "New alert: " + title + " " : count + " new alerts, the latest: " + title + " ";
      const link = document.createElement("a");
      link.href = "/ui/alerts";
      link.textContent = "Show alerts";
      live.append(text, link);
      live.hidden = false;
    };
    const open = () => {
      if (!events && document.visibilityState === "visible") {
        events = new EventSource("/ui/events");
        events.addEventListener("alert.created", announce);
      }
    };
    const close = () => {
      if (events) {
        events.close();
        events = null;
      }
    };
    document.addEventListener("visibilitychange", () => (document.visibilityState === "visible" ? open() : close()));
    window.addEventListener("pagehide", close);
    window.addEventListener("pageshow", open);
    open();
  }
});
