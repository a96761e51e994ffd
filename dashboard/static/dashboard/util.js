// Small helpers shared by the dashboard's modules: DOM building and the REST client.

/** Create an element. Props: class, text, dataset, on<event> handlers, attributes. */
export function h(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === 'class') node.className = value;
    else if (key === 'text') node.textContent = value;
    else if (key === 'dataset') Object.assign(node.dataset, value);
    else if (key.startsWith('on') && typeof value === 'function') {
      node.addEventListener(key.slice(2), value);
    } else if (key in node && typeof value !== 'string') node[key] = value;
    else node.setAttribute(key, value === true ? '' : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

/** Show `message` in an in-place message element (hidden when empty). */
export function say(node, message) {
  node.textContent = message || '';
  node.hidden = !message;
}

export const fmt = (n) => (typeof n === 'number' ? n.toLocaleString('en-US') : '–');

export function when(iso) {
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return '';
  const now = new Date();
  const sameDay = date.toDateString() === now.toDateString();
  return sameDay
    ? date.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' })
    : date.toLocaleDateString([], { month: 'short', day: 'numeric', year:
        date.getFullYear() === now.getFullYear() ? undefined : 'numeric' });
}

/** An error from the gateway's REST API: `{"error", "message", "fields"}`. */
export class ApiError extends Error {
  constructor(status, code, message, fields) {
    super(message);
    this.status = status;
    this.code = code;
    this.fields = fields || null;
  }

  /** The message with per-field messages appended. */
  get detail() {
    if (!this.fields) return this.message;
    const parts = Object.entries(this.fields).map(([key, value]) =>
      `${key}: ${typeof value === 'string' ? value : JSON.stringify(value)}`);
    return `${this.message} (${parts.join('; ')})`;
  }
}

/**
 * A REST client for the bearer token `token()` returns. `onUnauthorized` runs on a 401
 * (the token expired or was revoked).
 */
export function makeApi(token, onUnauthorized) {
  return async function api(method, path, body) {
    const headers = { Accept: 'application/json', Authorization: `Bearer ${token()}` };
    const init = { method, headers };
    if (body !== undefined) {
      headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(path, init);
    } catch {
      throw new ApiError(0, 'network_error',
        'The gateway cannot be reached; check the connection and try again.');
    }
    if (response.status === 204) return null;
    let data = null;
    try {
      data = await response.json();
    } catch {
      data = null;
    }
    if (!response.ok) {
      if (response.status === 401 && onUnauthorized) onUnauthorized();
      throw new ApiError(response.status, data?.error || `http_${response.status}`,
        data?.message || `The gateway answered HTTP ${response.status}.`, data?.fields);
    }
    return data;
  };
}

/** The CSRF token Django put in the page, for the session-authenticated views. */
export function csrfToken() {
  return document.querySelector('meta[name="csrf-token"]')?.content || '';
}
