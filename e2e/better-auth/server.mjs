// Better Auth's own server, set up as the README tells a frontend to set it up: memory adapter,
// email and password, and the jwt() plugin with its defaults. `make test-better-auth` starts
// one per configuration; the environment picks what differs:
//   PORT                    where to listen (127.0.0.1)
//   BETTER_AUTH_URL         baseURL (default http://127.0.0.1:PORT); tokens carry its origin
//   BETTER_AUTH_SECRET      at least 32 characters
//   JWT_ALG                 EdDSA (the plugin's default when unset), ES256 or RS256
//   JWKS_ROTATION_SECONDS   jwks.rotationInterval: sign with a new key once the last expired
//   JWT_EXPIRATION          jwt.expirationTime (default 15m)
//   STATIC_DIR              also serve these files at / (the browser test's page and bundle)
import { readFile } from "node:fs/promises";
import http from "node:http";
import path from "node:path";

import { betterAuth } from "better-auth";
import { memoryAdapter } from "better-auth/adapters/memory";
import { toNodeHandler } from "better-auth/node";
import { jwt } from "better-auth/plugins";

const port = Number(process.env.PORT ?? 3006);
const baseURL = process.env.BETTER_AUTH_URL ?? `http://127.0.0.1:${port}`;
const KEY_PAIRS = {
  EdDSA: { alg: "EdDSA", crv: "Ed25519" },
  ES256: { alg: "ES256" },
  RS256: { alg: "RS256", modulusLength: 2048 },
};

const jwks = {};
if (process.env.JWT_ALG) {
  jwks.keyPairConfig = KEY_PAIRS[process.env.JWT_ALG];
  if (!jwks.keyPairConfig) throw new Error(`JWT_ALG must be one of ${Object.keys(KEY_PAIRS)}`);
}
if (process.env.JWKS_ROTATION_SECONDS) {
  jwks.rotationInterval = Number(process.env.JWKS_ROTATION_SECONDS);
}
const jwtOptions = {};
if (Object.keys(jwks).length) jwtOptions.jwks = jwks;
if (process.env.JWT_EXPIRATION) jwtOptions.jwt = { expirationTime: process.env.JWT_EXPIRATION };

const auth = betterAuth({
  baseURL,
  secret: process.env.BETTER_AUTH_SECRET,
  database: memoryAdapter({ user: [], session: [], account: [], verification: [], jwks: [] }),
  emailAndPassword: { enabled: true },
  plugins: [jwt(jwtOptions)],
  // The tests sign many users up from one address; nothing leaves this machine.
  rateLimit: { enabled: false },
  telemetry: { enabled: false },
});

const authHandler = toNodeHandler(auth);
const staticDir = process.env.STATIC_DIR ? path.resolve(process.env.STATIC_DIR) : null;
const TYPES = { ".html": "text/html", ".js": "text/javascript", ".map": "application/json" };

async function serveStatic(req, res) {
  const { pathname } = new URL(req.url, baseURL);
  const file = path.resolve(staticDir, "." + (pathname === "/" ? "/index.html" : pathname));
  if (req.method !== "GET" || !file.startsWith(staticDir + path.sep)) {
    res.writeHead(404).end();
    return;
  }
  try {
    const body = await readFile(file);
    res.writeHead(200, { "Content-Type": TYPES[path.extname(file)] ?? "application/octet-stream" });
    res.end(body);
  } catch {
    res.writeHead(404).end();
  }
}

const server = http.createServer((req, res) => {
  if (req.url.startsWith("/api/auth/")) return authHandler(req, res);
  if (staticDir) return serveStatic(req, res);
  res.writeHead(404).end();
});
server.listen(port, "127.0.0.1", () => {
  console.log(`better-auth ${process.env.JWT_ALG ?? "EdDSA"} listening on ${baseURL}`);
});
for (const signal of ["SIGTERM", "SIGINT"]) {
  process.on(signal, () => server.close(() => process.exit(0)));
}
