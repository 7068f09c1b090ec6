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

  // New alerts, live: a banner that says so and offers to reload.
  const live = document.getElementById("live");
  if (live && window.EventSource) {
    const events = new EventSource("/ui/events");
    let count = 0;
    events.addEventListener("alert.created", (message) => {
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
    });
  }
});
