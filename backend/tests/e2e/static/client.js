// What a single-page app on another origin does with the Tasks API: every call is a
// cross-origin fetch with a bearer token, so the API's CORS answer decides what it may read.
window.tasksClient = (function () {
  async function call(api, token, method, path, { body, headers = {} } = {}) {
    const init = { method, headers: { Authorization: `Bearer ${token}`, ...headers } };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const response = await fetch(`${api}${path}`, init);
    const text = await response.text();
    return {
      status: response.status,
      etag: response.headers.get("ETag"),
      location: response.headers.get("Location"),
      requestId: response.headers.get("X-Request-ID"),
      body: text ? JSON.parse(text) : null,
    };
  }

  // Create, update with If-Match, retry the stale If-Match, then list: the SPA's day.
  async function roundTrip(api, userId, token) {
    const tasks = `/api/${encodeURIComponent(userId)}/tasks`;
    const created = await call(api, token, "POST", tasks, { body: { title: "From the browser" } });
    const taskPath = `${tasks}/${created.body.data.id}`;
    const ifMatch = { "If-Match": created.etag };
    const updated = await call(api, token, "PATCH", taskPath, {
      body: { priority: "high" },
      headers: ifMatch,
    });
    const stale = await call(api, token, "PUT", taskPath, { body: { title: "Lost" }, headers: ifMatch });
    const listed = await call(api, token, "GET", tasks);
    return { created, updated, stale, listed };
  }

  // Resolves to how the fetch ended, so a test can see a browser's CORS refusal.
  async function attempt(api, userId, token, method) {
    const path = `/api/${encodeURIComponent(userId)}/tasks`;
    const body = method === "POST" ? { title: "Must not exist" } : undefined;
    try {
      const result = await call(api, token, method, path, { body });
      return { ok: true, status: result.status };
    } catch (error) {
      return { ok: false, error: `${error.name}: ${error.message}` };
    }
  }

  return { call, roundTrip, attempt };
})();
