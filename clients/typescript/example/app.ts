/**
 * A minimal SPA on the typed client: it signs in with Better Auth (served on this page's own
 * origin) and calls the API on another origin, through CORS. `npm run bundle` makes
 * dist/app.js (global `spa`); `make test-better-auth` drives it in headless Chromium.
 */
import { createTasksClient, retryAfterSeconds, type TokenSource } from "../src/index";

/** Better Auth's endpoints, on this page's origin (its session is a cookie). */
export async function signUp(email: string, password: string, name: string): Promise<string> {
  const response = await fetch("/api/auth/sign-up/email", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ email, password, name }),
  });
  if (!response.ok) throw new Error(`sign-up: ${response.status}`);
  const body = (await response.json()) as { user: { id: string } };
  return body.user.id;
}

/** The JWT from `GET /api/auth/token`, kept until the API refuses it. */
export function betterAuthTokens(): TokenSource & { requests: number } {
  let cached: string | null = null;
  const source = async ({ fresh }: { fresh: boolean }): Promise<string | null> => {
    if (cached !== null && !fresh) return cached;
    source.requests += 1;
    const response = await fetch("/api/auth/token");
    cached = response.ok ? ((await response.json()) as { token: string }).token : null;
    return cached;
  };
  source.requests = 0;
  return source;
}

/** Create, list, update, complete and delete a task, as the SPA would. */
export async function lifecycle(apiUrl: string, userId: string) {
  const api = createTasksClient({ baseUrl: apiUrl, getToken: betterAuthTokens() });
  const path = { user_id: userId };

  const created = await api.POST("/api/{user_id}/tasks", {
    params: { path },
    body: { title: "From the SPA", tags: ["browser"] },
  });
  if (!created.data) throw new Error(`create: ${created.response.status}`);
  const task = created.data.data;
  const taskPath = { user_id: userId, task_id: task.id };

  const listed = await api.GET("/api/{user_id}/tasks", {
    params: { path, query: { status: "pending", sort: "created" } },
  });
  const patched = await api.PATCH("/api/{user_id}/tasks/{task_id}", {
    params: { path: taskPath },
    body: { priority: "high" },
    headers: { "If-Match": created.response.headers.get("ETag") ?? "*" },
  });
  const put = await api.PUT("/api/{user_id}/tasks/{task_id}", {
    params: { path: taskPath },
    body: { title: "From the SPA, renamed" },
  });
  const completed = await api.PATCH("/api/{user_id}/tasks/{task_id}/complete", {
    params: { path: taskPath },
  });
  const stats = await api.GET("/api/{user_id}/stats", { params: { path } });
  const deleted = await api.DELETE("/api/{user_id}/tasks/{task_id}", {
    params: { path: taskPath },
  });
  const gone = await api.GET("/api/{user_id}/tasks/{task_id}", { params: { path: taskPath } });

  return {
    created: {
      status: created.response.status,
      id: task.id,
      etag: created.response.headers.get("ETag"),
      location: created.response.headers.get("Location"),
      requestId: created.response.headers.get("X-Request-ID"),
    },
    listed: { status: listed.response.status, ids: listed.data?.data.map((t) => t.id) ?? [] },
    patched: { status: patched.response.status, priority: patched.data?.data.priority },
    put: { status: put.response.status, title: put.data?.data.title },
    completed: {
      status: completed.response.status,
      isCompleted: completed.data?.data.is_completed,
      completedAt: completed.data?.data.completed_at,
    },
    stats: { status: stats.response.status, completed: stats.data?.data.completed },
    deleted: { status: deleted.response.status },
    gone: { status: gone.response.status, code: gone.error?.error.code },
  };
}

/** A 401 gets one fresh token from Better Auth, then the request goes through. */
export async function refreshAfter401(apiUrl: string, userId: string, staleToken: string) {
  const fromBetterAuth = betterAuthTokens();
  let signedOut = false;
  const api = createTasksClient({
    baseUrl: apiUrl,
    getToken: async ({ fresh }) => (fresh ? fromBetterAuth({ fresh }) : staleToken),
    onSignedOut: () => {
      signedOut = true;
    },
  });
  const listed = await api.GET("/api/{user_id}/tasks", { params: { path: { user_id: userId } } });
  return { status: listed.response.status, tokenRequests: fromBetterAuth.requests, signedOut };
}

/** When even a fresh token is refused, the client signs out after one retry. */
export async function signOutAfterTwo401s(apiUrl: string, userId: string) {
  let asked = 0;
  let signedOut = 0;
  const api = createTasksClient({
    baseUrl: apiUrl,
    getToken: async () => {
      asked += 1;
      return "not-a-jwt";
    },
    onSignedOut: () => {
      signedOut += 1;
    },
  });
  const listed = await api.GET("/api/{user_id}/tasks", { params: { path: { user_id: userId } } });
  return { status: listed.response.status, asked, signedOut };
}

/** A 503 is waited out once (its Retry-After read through CORS), then handed to the caller. */
export async function unavailable(apiUrl: string, userId: string, token: string) {
  const waits: number[] = [];
  const api = createTasksClient({
    baseUrl: apiUrl,
    getToken: async () => token,
    maxRetries: 1,
    onRetry: ({ retryAfter }) => waits.push(retryAfter),
  });
  const listed = await api.GET("/api/{user_id}/tasks", { params: { path: { user_id: userId } } });
  return {
    status: listed.response.status,
    code: listed.error?.error.code,
    retryAfter: retryAfterSeconds(listed.response),
    waits,
  };
}
