// The client loop of the README without a library: list every page, follow `changes` from
// the first page's sync token, then read `events` with fetch (EventSource cannot send
// Authorization) and apply each change; reconnect with Last-Event-ID when a stream ends.
window.syncClient = (function () {
  const tasks = new Map();
  let token = null;

  function render(status) {
    if (status) document.body.dataset.status = status;
    const items = [...tasks.values()].map((task) => {
      const item = document.createElement("li");
      item.dataset.id = task.id;
      item.dataset.title = task.title;
      item.dataset.completed = String(task.is_completed);
      item.textContent = task.title + (task.is_completed ? " (done)" : "");
      return item;
    });
    document.getElementById("tasks").replaceChildren(...items);
  }

  function apply(change) {
    if (change.type === "upsert") tasks.set(change.task.id, change.task);
    else tasks.delete(change.id);
  }

  async function get(api, jwt, path) {
    const response = await fetch(`${api}${path}`, { headers: { Authorization: `Bearer ${jwt}` } });
    if (!response.ok) throw new Error(`${path}: HTTP ${response.status}`);
    return response.json();
  }

  // One SSE block ("event: ...\ndata: ...\nid: ...") applied; comments are keep-alives.
  function handle(block) {
    const fields = {};
    for (const line of block.split("\n")) {
      if (line === "" || line.startsWith(":")) continue;
      const colon = line.indexOf(":");
      fields[line.slice(0, colon)] = line.slice(colon + 1).replace(/^ /, "");
    }
    if (!fields.event) return;
    apply(JSON.parse(fields.data));
    token = fields.id;
    render();
  }

  async function listen(api, base, getJwt) {
    for (;;) {
      const response = await fetch(`${api}${base}/events`, {
        headers: { Authorization: `Bearer ${getJwt()}`, "Last-Event-ID": token },
      });
      if (response.status === 410) return render("expired: reload the list");
      if (!response.ok) return render(`error ${response.status}`);
      render("live");
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        for (let end; (end = buffer.indexOf("\n\n")) >= 0; ) {
          handle(buffer.slice(0, end));
          buffer = buffer.slice(end + 2);
        }
      }
      render("reconnecting"); // the JWT expired or the server restarted: resume from `token`
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
  }

  async function start(api, userId, jwt) {
    const base = `/api/${encodeURIComponent(userId)}`;
    let cursor = null;
    do {
      const query = cursor ? `&cursor=${encodeURIComponent(cursor)}` : "";
      const page = await get(api, jwt, `${base}/tasks?limit=100${query}`);
      if (token === null) token = page.meta.sync_token;
      page.data.forEach((task) => tasks.set(task.id, task));
      cursor = page.meta.next_cursor;
    } while (cursor);
    for (;;) {
      const page = await get(api, jwt, `${base}/changes?since=${encodeURIComponent(token)}`);
      page.data.forEach(apply);
      token = page.meta.sync_token;
      if (!page.meta.has_more) break;
    }
    render("following");
    listen(api, base, () => jwt); // a real app asks its auth client for a fresh JWT here
  }

  return { start };
})();
