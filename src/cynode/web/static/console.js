// CyNode console: the only script. It keeps a running task's page live by polling the task's JSON
// feed, and streams chat answers from the console's OpenAI-compatible route. Everything it writes
// goes in as text (textContent), never as HTML. Every page works without it (chat then answers in
// one piece after a reload).
const POLL_MS = 1000;

async function follow(section) {
  const url = section.dataset.liveUrl;
  const status = document.getElementById("task-status");
  const stdout = document.getElementById("task-stdout");
  const stderr = document.getElementById("task-stderr");
  for (;;) {
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
    let live;
    try {
      const response = await fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" });
      if (!response.ok || !response.headers.get("content-type")?.startsWith("application/json")) {
        location.reload(); // signed out or gone: let the server render what applies
        return;
      }
      live = await response.json();
    } catch {
      continue; // a network blip: try again on the next tick
    }
    status.textContent = live.status;
    status.className = `status status-${live.status}`;
    if (stdout.textContent !== live.stdout) stdout.textContent = live.stdout;
    if (stderr.textContent !== live.stderr) stderr.textContent = live.stderr;
    if (live.finished) {
      location.reload(); // the finished page shows the result and drops the cancel button
      return;
    }
  }
}

const live = document.querySelector("section[data-live-url]:not([data-live-url=''])");
if (live) follow(live);

// The data of each server-sent event in an OpenAI stream, as it arrives.
async function* eventData(body) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const event = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      for (const line of event.split("\n")) {
        if (line.startsWith("data:")) yield line.slice(5).trim();
      }
    }
  }
}

function addMessage(log, role, text) {
  const item = document.createElement("li");
  item.className = `message message-${role}`;
  item.dataset.role = role;
  const speaker = document.createElement("span");
  speaker.className = "speaker";
  speaker.textContent = role === "user" ? "You" : "Assistant";
  const content = document.createElement("div");
  content.className = "content";
  content.textContent = text;
  item.append(speaker, content);
  log.append(item);
  return content;
}

async function ask(form, log, status, text) {
  const earlier = [...log.querySelectorAll("li[data-role]")].map((item) => ({
    role: item.dataset.role,
    content: item.querySelector(".content").textContent,
  }));
  addMessage(log, "user", text);
  const answer = addMessage(log, "assistant", "");
  status.textContent = "Answering…";
  try {
    const request = {
      model: form.elements.model.value,
      messages: [...earlier, { role: "user", content: text }],
      stream: true,
    };
    const response = await fetch(form.dataset.completions, {
      method: "POST",
      credentials: "same-origin",
      headers: {
        "Content-Type": "application/json",
        Accept: "text/event-stream",
        "X-CSRF-Token": form.elements.csrf_token.value,
      },
      body: JSON.stringify(request),
    });
    const type = response.headers.get("content-type") ?? "";
    if (type.startsWith("text/html")) {
      location.reload(); // signed out: let the server send the login page
      return;
    }
    if (!response.ok) throw new Error((await response.json()).error?.message ?? response.statusText);
    for await (const data of eventData(response.body)) {
      if (data === "[DONE]") break;
      const chunk = JSON.parse(data);
      if (chunk.error) throw new Error(chunk.error.message);
      answer.textContent += chunk.choices?.map((choice) => choice.delta?.content ?? "").join("") ?? "";
    }
    status.textContent = "Answered.";
    const thread = response.headers.get("x-cynode-thread");
    if (thread) window.history.replaceState(null, "", `/chat?thread=${encodeURIComponent(thread)}`);
  } catch (error) {
    if (!answer.textContent) answer.parentElement.remove();
    status.textContent = `No answer: ${error.message}`;
  }
}

const chatForm = document.getElementById("chat-form");
if (chatForm) {
  const log = document.getElementById("chat-log");
  const status = document.getElementById("chat-status");
  const send = chatForm.querySelector("button[type=submit]");
  chatForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    const text = chatForm.elements.message.value.trim();
    if (!text) return;
    chatForm.elements.message.value = "";
    send.disabled = true;
    log.setAttribute("aria-busy", "true"); // screen readers read the answer once, not token by token
    try {
      await ask(chatForm, log, status, text);
    } finally {
      log.removeAttribute("aria-busy");
      send.disabled = false;
      chatForm.elements.message.focus();
    }
  });
}
