// scoreboard SDK: a dependency-free ES module for browsers and Node (18+; the live board needs a
// global WebSocket — Node 22+, or Node 20 with --experimental-websocket — or falls back to SSE over fetch).
//
// Protocol rules it implements (docs/clients.md): apply a board message only if its seq is newer within
// the epoch; an update that skips a seq means frames were missed, so re-subscribe with `since` and let
// the server replay them; a new epoch means history was lost, so re-subscribe and take the snapshot as truth.

export const CHANNEL = "scoreboard_updates";

/** An RFC 9457 problem answered by the server (or a transport failure, status 0). */
export class ScoreboardError extends Error {
  constructor(status, problem = {}, retryAfter = null) {
    super(problem.detail || problem.title || `HTTP ${status}`);
    this.name = "ScoreboardError";
    this.status = status;
    this.code = problem.code || (status ? "http_error" : "network_error");
    this.problem = problem;
    this.retryAfter = retryAfter;
  }
}

/** Exponential back-off with "equal jitter": half the step is fixed, half random. */
export function backoffDelay(attempt, { initialMs = 500, maxMs = 15000, factor = 2 } = {}, random = Math.random) {
  const step = Math.min(maxMs, initialMs * factor ** attempt);
  return Math.round(step / 2 + (random() * step) / 2);
}

/**
 * The seq/epoch rule as a pure state machine. `judge(message)` says what to do with a board message:
 * "apply" (it is the next state), "stale" (already have it or newer), or "resync" (a gap or a new epoch:
 * re-subscribe with `since` and wait for the replay or snapshot). `receive(message, now)` adds the
 * waiting: ask once, ignore frames while the answer is due, and if it has not closed the gap within
 * `patienceMs` (frames lost again, or a server conflating under load) take the next message as truth —
 * every message carries the whole top 10 — so the board never stalls.
 */
export class BoardState {
  constructor({ patienceMs = 3000 } = {}) {
    this.epoch = null;
    this.seq = -1;
    this.top = [];
    this.patienceMs = patienceMs;
    this.resyncSince = null;
  }

  get position() {
    return this.epoch === null ? null : { epoch: this.epoch, seq: this.seq };
  }

  judge(message) {
    if (this.epoch === null || message.epoch !== this.epoch) {
      return message.type === "snapshot" ? "apply" : "resync";
    }
    if (message.seq <= this.seq) return "stale";
    if (message.type === "update" && message.seq > this.seq + 1) return "resync";
    return "apply";
  }

  /** `{apply, resync}`: whether to apply `message`, and whether to ask for a resync now. */
  receive(message, now) {
    const verdict = this.judge(message);
    if (verdict !== "resync") return { apply: verdict === "apply", resync: false };
    if (this.resyncSince === null) {
      this.resyncSince = now;
      return { apply: false, resync: true };
    }
    return { apply: now - this.resyncSince >= this.patienceMs, resync: false };
  }

  apply(message) {
    this.epoch = message.epoch;
    this.seq = message.seq;
    this.top = message.top;
    this.resyncSince = null;
  }
}

function decodeClaims(token) {
  const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
  const json = new TextDecoder().decode(Uint8Array.from(atob(part), (c) => c.charCodeAt(0)));
  return JSON.parse(json);
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

export class ScoreboardClient {
  constructor(options = {}) {
    const origin = globalThis.location?.origin;
    this.baseUrl = (options.baseUrl ?? origin ?? "").replace(/\/$/, "");
    if (!this.baseUrl) throw new TypeError("ScoreboardClient needs a baseUrl outside a browser");
    this.wsUrl = options.wsUrl ?? `${this.baseUrl.replace(/^http/, "ws")}/ws`;
    this.streamUrl = options.streamUrl ?? `${this.baseUrl}/api/leaderboard/stream`;
    this.transport = options.transport ?? "auto"; // "auto" | "websocket" | "sse"
    this.backoff = { initialMs: 500, maxMs: 15000, factor: 2, ...options.backoff };
    this.wsFailuresBeforeFallback = options.wsFailuresBeforeFallback ?? 2;
    this.completeRetries = options.completeRetries ?? 2;
    this._fetch = options.fetch ?? globalThis.fetch.bind(globalThis);
    this._WebSocket = options.WebSocket ?? globalThis.WebSocket;
    this._random = options.random ?? Math.random;
    this._credentials = options.credentials ?? "same-origin";
    this._listeners = new Map();
    this._board = new BoardState({ patienceMs: options.resyncPatienceMs ?? 3000 });
    this._session = options.session ?? null;
    this._state = "idle";
    this._attempt = 0;
    this._wsFailures = 0;
    this._useSse = this.transport === "sse";
    this._conn = null;
    this._timer = null;
    this._refreshing = null;
    this._closed = false;
    this._watchNetwork();
  }

  // --- events -----------------------------------------------------------------------------------

  /** Listen to "board", "state", "session" or "error"; returns a function that stops listening. */
  on(event, callback) {
    if (!this._listeners.has(event)) this._listeners.set(event, new Set());
    this._listeners.get(event).add(callback);
    return () => this._listeners.get(event).delete(callback);
  }

  _emit(event, detail) {
    for (const callback of [...(this._listeners.get(event) ?? [])]) {
      try {
        callback(detail);
      } catch (error) {
        if (event !== "error") this._emit("error", error);
      }
    }
  }

  /** Calls `callback(board)` with the current board (if any) and every newer one; connects if needed. */
  onBoard(callback) {
    const stop = this.on("board", callback);
    if (this._board.epoch !== null) callback(this.board);
    if (this._state === "idle" || this._state === "closed") this.connect();
    return stop;
  }

  get board() {
    const { epoch, seq, top } = this._board;
    return epoch === null ? null : { epoch, seq, top };
  }

  get state() {
    return this._state;
  }

  get session() {
    return this._session;
  }

  _setState(state, extra = {}) {
    this._state = state;
    this._emit("state", { state, transport: this._useSse ? "sse" : "websocket", attempt: this._attempt, ...extra });
  }

  // --- HTTP API -----------------------------------------------------------------------------------

  async _call(method, path, body, { auth = false, retried = false } = {}) {
    const headers = { Accept: "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (auth) {
      if (!this._session) throw new ScoreboardError(401, { code: "unauthenticated", detail: "log in first" });
      headers.Authorization = `Bearer ${this._session.accessToken}`;
    }
    let response;
    try {
      const init = { method, headers, credentials: this._credentials };
      if (body !== undefined) init.body = JSON.stringify(body);
      response = await this._fetch(`${this.baseUrl}${path}`, init);
    } catch (error) {
      throw new ScoreboardError(0, { detail: `cannot reach the scoreboard: ${error.message}` });
    }
    if (response.status === 401 && auth && !retried && this._session?.refreshToken && (await this._tryRefresh())) {
      return this._call(method, path, body, { auth, retried: true });
    }
    const data = response.status === 204 ? null : await response.json().catch(() => ({}));
    if (!response.ok) {
      const retryAfter = Number(response.headers.get("retry-after")) || null;
      throw new ScoreboardError(response.status, data ?? {}, retryAfter);
    }
    return data;
  }

  async register(username, password, displayName) {
    const body = { username, password };
    if (displayName) body.display_name = displayName;
    return this._call("POST", "/api/auth/register", body);
  }

  async login(username, password) {
    const tokens = await this._call("POST", "/api/auth/login", { username, password });
    return this._remember(tokens, username);
  }

  /** Exchanges the refresh token for a new pair (the old one is spent); throws 401 if it was refused. */
  async refresh() {
    if (!this._session?.refreshToken) throw new ScoreboardError(401, { code: "unauthenticated", detail: "no session" });
    const session = this._session;
    try {
      const tokens = await this._call("POST", "/api/auth/refresh", { refresh_token: session.refreshToken });
      return this._remember(tokens, session.username);
    } catch (error) {
      if (error.status === 401) this._forget();
      throw error;
    }
  }

  async _tryRefresh() {
    this._refreshing ??= this.refresh().then(
      () => true,
      () => false,
    );
    try {
      return await this._refreshing;
    } finally {
      this._refreshing = null;
    }
  }

  /** Revokes the access token and its refresh family on the server; forgets the session either way. */
  async logout() {
    try {
      if (this._session) await this._call("POST", "/api/auth/logout", undefined, { auth: true, retried: true });
    } finally {
      this._forget();
    }
  }

  /** Restores a session saved from the "session" event (e.g. in sessionStorage). */
  setSession(session) {
    this._session = session;
    this._emit("session", session);
  }

  _remember(tokens, username) {
    const claims = decodeClaims(tokens.access_token);
    this._session = {
      userId: claims.sub,
      username,
      accessToken: tokens.access_token,
      refreshToken: tokens.refresh_token,
      expiresAt: Date.now() + tokens.expires_in * 1000,
    };
    this._emit("session", this._session);
    return this._session;
  }

  _forget() {
    if (this._session === null) return;
    this._session = null;
    this._emit("session", null);
  }

  /** Asks for a ticket to complete an action of `type`: `{action_id, type, points, issued_at, expires_at}`. */
  async requestAction(type = "default") {
    return this._call("POST", "/api/actions", { type }, { auth: true });
  }

  /**
   * Redeems a ticket: `{message, new_score, rank}`. A lost answer or a 503 is retried (exactly-once makes
   * that safe); a 409 to a retry means the first attempt landed, so it resolves with `duplicate: true`.
   */
  async completeAction(actionId) {
    const body = () => ({ user_id: this._session?.userId, action_id: actionId });
    for (let attempt = 0; ; attempt += 1) {
      try {
        return await this._call("POST", "/api/score/update", body(), { auth: true });
      } catch (error) {
        if (attempt > 0 && error.code === "duplicate_action") {
          return { message: "Score updated successfully.", new_score: error.problem.score, rank: null, duplicate: true };
        }
        const transient = error.status === 0 || error.status === 503;
        if (!transient || attempt >= this.completeRetries) throw error;
        await sleep(error.retryAfter ? error.retryAfter * 1000 : backoffDelay(attempt, this.backoff, this._random));
      }
    }
  }

  async leaderboard(limit = 10) {
    return this._call("GET", `/api/leaderboard?limit=${encodeURIComponent(limit)}`);
  }

  async userScore(userId = this._session?.userId) {
    return this._call("GET", `/api/users/${encodeURIComponent(userId)}/score`);
  }

  // --- live board ---------------------------------------------------------------------------------

  /** Opens the live connection (WebSocket, or SSE as a fallback) and keeps it open until `disconnect()`. */
  connect() {
    this._closed = false;
    if (this._conn || this._timer) return;
    if (this._offline()) {
      this._setState("offline");
      return;
    }
    this._setState(this._attempt ? "reconnecting" : "connecting");
    if (!this._useSse && (this.transport === "sse" || typeof this._WebSocket !== "function")) this._useSse = true;
    if (this._useSse) this._openStream();
    else this._openSocket();
  }

  /** Closes the live connection for good (until `connect()` or `onBoard()` again). */
  disconnect() {
    this._closed = true;
    clearTimeout(this._timer);
    this._timer = null;
    this._drop();
    this._setState("closed");
  }

  _drop() {
    const conn = this._conn;
    this._conn = null;
    conn?.close();
  }

  _retry(reason) {
    if (this._closed || this._timer) return;
    this._drop();
    if (this._offline()) {
      this._setState("offline", { reason });
      return;
    }
    const delay = backoffDelay(this._attempt, this.backoff, this._random);
    this._attempt += 1;
    this._setState("reconnecting", { retryInMs: delay, reason });
    this._timer = setTimeout(() => {
      this._timer = null;
      this.connect();
    }, delay);
  }

  _openSocket() {
    const socket = new this._WebSocket(this.wsUrl);
    let opened = false;
    const conn = {
      close: () => socket.close(1000),
      resync: () => socket.send(JSON.stringify(this._subscribeMessage())),
    };
    this._conn = conn;
    socket.onopen = () => {
      if (this._conn !== conn) return;
      opened = true;
      this._wsFailures = 0;
      socket.send(JSON.stringify(this._subscribeMessage()));
      this._live();
    };
    socket.onmessage = (event) => this._conn === conn && this._receive(JSON.parse(event.data));
    // Browsers fire "error" then "close"; some runtimes (Node 20's WebSocket) only "error" when a
    // connection cannot be opened, so either one ends this connection, once.
    const lost = (reason) => {
      if (this._conn !== conn) return;
      this._conn = null;
      if (!opened && this.transport === "auto" && ++this._wsFailures >= this.wsFailuresBeforeFallback) {
        this._useSse = true;
      }
      this._retry(opened ? reason : "websocket failed to open");
    };
    socket.onerror = () => !opened && lost("websocket error");
    socket.onclose = (event) => lost(`websocket closed (${event.code})`);
  }

  _subscribeMessage() {
    const message = { type: "subscribe", channel: CHANNEL };
    if (this._board.position) message.since = this._board.position;
    return message;
  }

  // A connection that stays up a while earns a fresh back-off (one that drops at once does not).
  _live() {
    const conn = this._conn;
    this._setState("live");
    const timer = setTimeout(() => {
      if (this._conn === conn) this._attempt = 0;
    }, 2000);
    timer.unref?.();
  }

  _receive(message) {
    if (message.type === "error") {
      this._emit("error", new ScoreboardError(0, { code: message.code, detail: message.detail }));
      return;
    }
    if (message.type !== "snapshot" && message.type !== "update") return;
    this._attempt = 0;
    const { apply, resync } = this._board.receive(message, Date.now());
    if (resync) this._resync();
    if (!apply) return;
    this._board.apply(message);
    this._emit("board", { ...this.board, type: message.type });
  }

  // A gap or an epoch change: ask for what was missed (BoardState ignores frames until the answer).
  _resync() {
    this._emit("state", { state: this._state, transport: this._useSse ? "sse" : "websocket", resync: true });
    this._conn?.resync();
  }

  // --- SSE over fetch (so Last-Event-ID and Authorization can be sent, in browsers and Node alike) ---

  _openStream() {
    const abort = new AbortController();
    const conn = {
      close: () => abort.abort(),
      resync: () => {
        // A stream cannot re-subscribe in place: reopen it at our position at once.
        this._conn = null;
        abort.abort();
        this.connect();
      },
    };
    this._conn = conn;
    // SSE is a fallback for one connection: when it ends, the next attempt tries the WebSocket again
    // (it failing along with SSE means the server was away, not that WebSockets are blocked).
    const ended = (reason) => {
      if (this._conn !== conn) return;
      this._useSse = this.transport === "sse";
      this._wsFailures = 0;
      this._retry(reason);
    };
    this._readStream(abort.signal, conn).then(
      () => ended("stream ended"),
      (error) => ended(`stream failed: ${error.message}`),
    );
  }

  async _readStream(signal, conn) {
    const headers = { Accept: "text/event-stream" };
    const position = this._board.position;
    if (position) headers["Last-Event-ID"] = `${position.epoch}:${position.seq}`;
    if (this._session) headers.Authorization = `Bearer ${this._session.accessToken}`;
    const response = await this._fetch(this.streamUrl, { headers, signal, credentials: this._credentials });
    if (!response.ok || !response.body) throw new Error(`HTTP ${response.status}`);
    if (this._conn !== conn) return;
    this._live();
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done || this._conn !== conn) return;
      buffer += value.replace(/\r\n?/g, "\n");
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0 && this._conn === conn) {
        const data = buffer
          .slice(0, end)
          .split("\n")
          .filter((line) => line.startsWith("data:"))
          .map((line) => line.slice(line[5] === " " ? 6 : 5))
          .join("\n");
        buffer = buffer.slice(end + 2);
        if (data) this._receive(JSON.parse(data));
      }
    }
  }

  // --- network awareness (browsers): drop at once when offline, reconnect at once when back ---------

  _offline() {
    return globalThis.navigator?.onLine === false;
  }

  _watchNetwork() {
    if (typeof globalThis.addEventListener !== "function" || !globalThis.navigator) return;
    globalThis.addEventListener("offline", () => {
      if (this._closed || this._state === "idle") return;
      clearTimeout(this._timer);
      this._timer = null;
      this._drop();
      this._setState("offline");
    });
    globalThis.addEventListener("online", () => {
      if (this._closed || this._state === "idle" || this._conn) return;
      clearTimeout(this._timer);
      this._timer = null;
      this._attempt = 0;
      this.connect();
    });
  }
}
