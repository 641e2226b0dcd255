// Talks to Parley's API with its HttpOnly cookies. The CSRF token is kept in memory (from the
// last token response, or the readable parley_csrf cookie) and sent in X-CSRF-Token on unsafe
// requests; no token is ever written to web storage. After a reload the session is renewed with the
// refresh cookie (POST /api/auth/refresh needs no CSRF token).

const UNSAFE = new Set(["POST", "PUT", "PATCH", "DELETE"]);
const session = { csrf: null, user: null };
let onSignedOut = () => {};
let refreshing = null;

export class ApiError extends Error {
  constructor(status, code, message, details) {
    super(message);
    this.status = status;
    this.code = code;
    this.details = details || [];
  }
}

export const currentUser = () => session.user;
export const setOnSignedOut = (fn) => { onSignedOut = fn; };

function readCookie(name) {
  for (const part of document.cookie.split(";")) {
    const [key, ...rest] = part.trim().split("=");
    if (key === name) return decodeURIComponent(rest.join("="));
  }
  return null;
}

/** Whether a session may exist: the CSRF cookie lives as long as the refresh cookie. */
export const maybeSignedIn = () => readCookie("parley_csrf") !== null;

export function signedIn(tokens) {
  session.csrf = tokens.csrf_token;
  session.user = tokens.user;
}

export function forget() {
  session.csrf = null;
  session.user = null;
}

export function updateUser(user) {
  session.user = { ...session.user, ...user };
}

async function errorFrom(response) {
  let body = null;
  try {
    body = await response.json();
  } catch {
    /* not JSON */
  }
  const error = body?.error || {};
  return new ApiError(
    response.status,
    error.code || `http_${response.status}`,
    error.message || response.statusText || "Request failed",
    error.details,
  );
}

/** Renews the session from the refresh cookie; true when signed in afterwards. Serialized across
 * tabs (Web Locks) because a refresh token works once: two tabs racing would look like theft. */
export function refresh() {
  refreshing ||= (async () => {
    const run = async () => {
      const response = await fetch("/api/auth/refresh", {
        method: "POST",
        headers: { Accept: "application/json" },
        credentials: "same-origin",
      });
      if (!response.ok) {
        forget();
        return false;
      }
      signedIn(await response.json());
      return true;
    };
    try {
      return navigator.locks ? await navigator.locks.request("parley-refresh", run) : await run();
    } finally {
      refreshing = null;
    }
  })();
  return refreshing;
}

function buildInit(method, body, headers, signal) {
  const init = { method, headers: { Accept: "application/json", ...headers }, credentials: "same-origin", signal };
  if (body instanceof FormData) {
    init.body = body;
  } else if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers["Content-Type"] = "application/json";
  }
  if (UNSAFE.has(method)) {
    const token = session.csrf || readCookie("parley_csrf");
    if (token) init.headers["X-CSRF-Token"] = token;
  }
  return init;
}

/** fetch() with the session: one refresh and retry on 401; errors thrown as ApiError. */
export async function send(path, { method = "GET", body, headers = {}, signal, auth = true } = {}) {
  let response = await fetch(path, buildInit(method, body, headers, signal));
  if (response.status === 401 && auth) {
    if (await refresh()) {
      response = await fetch(path, buildInit(method, body, headers, signal));
    }
    if (response.status === 401) {
      forget();
      onSignedOut();
    }
  }
  if (!response.ok) throw await errorFrom(response);
  return response;
}

export async function api(path, options = {}) {
  const response = await send(path, options);
  if (response.status === 204) return null;
  const type = response.headers.get("content-type") || "";
  return type.includes("json") ? response.json() : response.text();
}

/** Starts an SSE answer (a send, regenerate, edit, start or generate): the open Response. */
export function openStream(path, body, { method = "POST", signal, headers = {} } = {}) {
  return send(path, {
    method,
    body: body === undefined ? undefined : { ...body, stream: true },
    headers: { Accept: "text/event-stream", ...headers },
    signal,
  });
}

export const get = (path, options) => api(path, options);
export const post = (path, body, options = {}) => api(path, { ...options, method: "POST", body });
export const patch = (path, body, options = {}) => api(path, { ...options, method: "PATCH", body });
export const del = (path, body, options = {}) => api(path, { ...options, method: "DELETE", body });

export function query(params) {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== "") search.set(key, value);
  }
  const text = search.toString();
  return text ? `?${text}` : "";
}
