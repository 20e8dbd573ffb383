// CyNode console: the only script. Pages work without it; it keeps a running task's page live by
// polling the task's JSON feed and writing status and logs as text (never as HTML).
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
