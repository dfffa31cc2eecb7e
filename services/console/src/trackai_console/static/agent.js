// The assistant's chat panel: a message is posted with fetch and its answer read as
// server-sent events from the same response (delta: the model's text as it is written;
// entry: a finished bubble or tool card, as HTML rendered by the console; session: the step and
// the escalation notice; error: a pt-BR message). The rest of the panel is htmx.
(function () {
  "use strict";
  // The panel may be swapped in more than once (a wizard's modal): listen once per page.
  if (window.trackaiAgentPanel) return;
  window.trackaiAgentPanel = true;

  function scrollDown(log) {
    log.scrollTop = log.scrollHeight;
  }

  function bubble(role, who, text) {
    const item = document.createElement("li");
    item.className = "agent-entry agent-" + role;
    const label = document.createElement("span");
    label.className = "agent-who";
    label.textContent = who;
    const body = document.createElement("p");
    body.textContent = text;
    item.append(label, body);
    return item;
  }

  function parse(block) {
    let name = "message";
    let data = "";
    for (const line of block.split("\n")) {
      if (line.startsWith("event:")) name = line.slice(6).trim();
      else if (line.startsWith("data:")) data += line.slice(5).trim();
    }
    return { name: name, payload: data ? JSON.parse(data) : {} };
  }

  async function send(form) {
    const text = form.querySelector("textarea");
    const content = text.value.trim();
    if (!content) return;
    const log = document.getElementById("agent-log");
    const button = form.querySelector("button[type=submit]");
    const data = new FormData(form);
    data.set("texto", content);
    log.append(bubble("user", "Você", content));
    scrollDown(log);
    text.value = "";
    button.disabled = true;
    form.setAttribute("aria-busy", "true");
    let live = null;

    function handle(event) {
      const payload = event.payload;
      if (event.name === "delta") {
        if (!live) {
          live = bubble("assistant agent-streaming", "Assistente", "");
          live.dataset.pieces = "0";
          log.append(live);
        }
        live.querySelector("p").textContent += payload.text;
        live.dataset.pieces = String(Number(live.dataset.pieces) + 1);
      } else if (event.name === "entry") {
        if (payload.role === "assistant" && live) {
          if (payload.html) {
            live.insertAdjacentHTML("beforebegin", payload.html);
            // How many pieces the answer arrived in (tests, and a curious reader of the DOM).
            live.previousElementSibling.dataset.streamed = live.dataset.pieces;
          }
          live.remove();
          live = null;
        } else if (payload.html) {
          log.insertAdjacentHTML("beforeend", payload.html);
        }
      } else if (event.name === "session") {
        const status = document.getElementById("agent-status");
        if (status) status.outerHTML = payload.status_html;
        const step = document.getElementById("agent-step");
        if (step) step.textContent = payload.step;
        if (payload.escalated && window.htmx) {
          // Reload the panel: it hides the button and starts waiting for the specialist.
          const panel = document.getElementById("agent-panel");
          const source = panel && panel.getAttribute("hx-get");
          if (source) window.htmx.ajax("GET", source, { target: panel, swap: "innerHTML" });
        }
      } else if (event.name === "error") {
        log.insertAdjacentHTML("beforeend", payload.html);
      }
      scrollDown(log);
    }

    try {
      const response = await fetch(form.action, {
        method: "POST",
        body: data,
        credentials: "same-origin",
        headers: { Accept: "text/event-stream", "X-CSRF-Token": data.get("csrf_token") },
      });
      if (!response.ok || !response.body) throw new Error("HTTP " + response.status);
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      for (;;) {
        const chunk = await reader.read();
        if (chunk.done) break;
        buffer += chunk.value;
        let end;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          handle(parse(buffer.slice(0, end)));
          buffer = buffer.slice(end + 2);
        }
      }
    } catch (error) {
      const item = bubble("error", "", "Não foi possível falar com o assistente agora. Tente de novo.");
      item.setAttribute("role", "alert");
      log.append(item);
    } finally {
      if (live) live.classList.remove("agent-streaming");
      button.disabled = false;
      form.removeAttribute("aria-busy");
      text.focus();
    }
  }

  document.addEventListener("submit", function (event) {
    const form = event.target;
    if (!(form instanceof HTMLFormElement) || !form.classList.contains("agent-form")) return;
    event.preventDefault();
    send(form);
  });
  // When htmx replaces the log (the panel loading, or the refresh while a specialist has the
  // conversation), keep the reader's place, and follow new entries when they were at the end.
  let kept = null;
  document.addEventListener("htmx:beforeSwap", function (event) {
    const log = document.getElementById("agent-log");
    if (!log || !event.detail.target.contains(log)) return;
    kept = {
      top: log.scrollTop,
      count: log.children.length,
      atEnd: log.scrollHeight - log.scrollTop - log.clientHeight < 8,
    };
  });
  // htmx:load is fired on the new content once it is in the page (an outerHTML swap's
  // afterSwap/afterSettle go to the element that was removed).
  document.addEventListener("htmx:load", function (event) {
    const log = document.getElementById("agent-log");
    if (!log || !event.target.contains(log)) return;
    if (kept === null || kept.atEnd || log.children.length > kept.count) scrollDown(log);
    else log.scrollTop = kept.top;
    kept = null;
  });
  // Enter sends, Shift+Enter breaks the line.
  document.addEventListener("keydown", function (event) {
    const field = event.target;
    if (event.key !== "Enter" || event.shiftKey || !(field instanceof HTMLTextAreaElement)) return;
    const form = field.form;
    if (!form || !form.classList.contains("agent-form")) return;
    event.preventDefault();
    form.requestSubmit();
  });
})();
