/**
 * The Tasks API for a browser SPA: the types generated from specs/contracts/openapi.yaml
 * (`make client` writes schema.d.ts) with openapi-fetch, plus what every caller needs around
 * them: the bearer token on each request, one fresh token after a 401 and then sign-out, and
 * the wait a 503 or 429 asks for in `Retry-After` (which the API's CORS lets a page read).
 */
import createClient, { type Client } from "openapi-fetch";

import type { components, operations, paths } from "./schema";

export type { components, operations, paths };
export type TasksClient = Client<paths>;

/** The JWT for the next request. `fresh` is true after a 401: ask Better Auth for a new one
 * (`GET /api/auth/token`) instead of a cached one. `null` means the user is signed out. */
export type TokenSource = (options: { fresh: boolean }) => Promise<string | null>;

export interface RetryInfo {
  status: number;
  retryAfter: number;
  attempt: number;
}

export interface TasksClientOptions {
  /** Where the API is, e.g. "https://api.example.com" (no trailing slash). */
  baseUrl: string;
  getToken: TokenSource;
  /** Called when even a fresh token is refused: the session is over. */
  onSignedOut?: () => void;
  /** How often a 503/429 is retried after its Retry-After (default 2; 0: never). */
  maxRetries?: number;
  /** A longer Retry-After is not waited for: the answer goes to the caller (default 30). */
  maxWaitSeconds?: number;
  /** Told before each wait, e.g. to show "reconnecting in N s". */
  onRetry?: (retry: RetryInfo) => void;
  fetch?: (request: Request) => Promise<Response>;
}

/** `Retry-After` in seconds (delta-seconds or an HTTP date), or null when there is none. */
export function retryAfterSeconds(response: Response): number | null {
  const value = response.headers.get("Retry-After");
  if (value === null || value.trim() === "") return null;
  const seconds = Number(value);
  if (Number.isFinite(seconds)) return Math.max(0, seconds);
  const date = Date.parse(value);
  return Number.isNaN(date) ? null : Math.max(0, (date - Date.now()) / 1000);
}

const RETRYABLE = new Set([429, 503]);

/** A retried POST could create twice, unless an Idempotency-Key makes the API replay it. */
function safeToRepeat(request: Request): boolean {
  return request.method !== "POST" || request.headers.has("Idempotency-Key");
}

export function createTasksClient(options: TasksClientOptions): TasksClient {
  const send = options.fetch ?? ((request: Request) => globalThis.fetch(request));
  const maxRetries = options.maxRetries ?? 2;
  const maxWait = options.maxWaitSeconds ?? 30;

  async function authorizedFetch(request: Request): Promise<Response> {
    let token = await options.getToken({ fresh: false });
    let refreshed = false;
    let retries = 0;
    for (;;) {
      // Each attempt sends a copy: a body can be read only once.
      const attempt = request.clone();
      if (token !== null) attempt.headers.set("Authorization", `Bearer ${token}`);
      const response = await send(attempt);
      if (response.status === 401) {
        if (!refreshed && token !== null) {
          refreshed = true;
          token = await options.getToken({ fresh: true });
          if (token !== null) continue;
        }
        options.onSignedOut?.();
        return response;
      }
      const wait = RETRYABLE.has(response.status) ? retryAfterSeconds(response) : null;
      if (wait !== null && wait <= maxWait && retries < maxRetries && safeToRepeat(request)) {
        retries += 1;
        options.onRetry?.({ status: response.status, retryAfter: wait, attempt: retries });
        await new Promise((resolve) => setTimeout(resolve, wait * 1000));
        continue;
      }
      return response;
    }
  }

  return createClient<paths>({ baseUrl: options.baseUrl, fetch: authorizedFetch });
}
